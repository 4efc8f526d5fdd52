"""An adversarial corpus: personal data in every string field of every input
schema, in every spelling we know of, plus sensitive terms in every script
and encoding. Each record carries its own identifiers (a phone, a resident
ID, a card, an email, an IPv4), so a leak can be traced to its record.

records(n) yields (schema name, record, needles, sensitive): needles are the
strings that must appear nowhere in any output, in any form; sensitive says
the record must come out withheld (no query, no URL domains).
"""
import random

PHONE_SEPS = ["", " ", "-", ".", ",", "/", "_", "  ", "\u00a0", "\u3000", "\u200b", " - "]
ZERO = ord("０")


def fullwidth(s):
    return "".join(chr(ZERO + int(c)) if c.isdigit() else c for c in s)


def group(digits, sizes, sep):
    out, i = [], 0
    for n in sizes:
        out.append(digits[i:i + n])
        i += n
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(x for x in out if x)


CN_NUM = "零一二三四五六七八九"


def phone_spellings(p):
    out = [p, "+86" + p, "+86 " + group(p, [3, 4, 4], " "), "0086" + p, "(" + p[:3] + ")" + p[3:7] + "-" + p[7:],
           fullwidth(p), "".join(CN_NUM[int(c)] for c in p), " ".join(p), "".join("&#%d;" % ord(c) for c in p),
           "".join("%%%02X" % ord(c) for c in p)]
    out += [group(p, [3, 4, 4], sep) for sep in PHONE_SEPS + ["丨", "点", "<br>", "ー"]]
    look = p.replace("0", "O").replace("1", "l")  # letters written for digits
    out += [look, group(look, [3, 4, 4], "-"), group(look, [3, 4, 4], "."), "(" + look + ")", "+86" + look,
            p.replace("1", "I")]
    return out


def cn_id(rng):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    base = "110105%04d%02d%02d%03d" % (rng.randint(1950, 2000), rng.randint(1, 12), rng.randint(1, 28),
                                      rng.randint(0, 999))
    return base + "10X98765432"[sum(int(a) * b for a, b in zip(base, w)) % 11]


def id_spellings(i):
    return [i, i.lower(), group(i, [6, 8, 4], " "), group(i, [6, 8, 4], "-"), fullwidth(i), group(i, [6, 4, 4, 4], "."),
            i.replace("0", "O")]


def luhn_card(rng):
    d = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for k, v in enumerate(reversed(d)):
        v = v * 2 if k % 2 == 0 else v
        total += v - 9 if v > 9 else v
    return "".join(map(str, d)) + str((10 - total % 10) % 10)


def card_spellings(c):
    return [c, group(c, [4, 4, 4, 4], " "), group(c, [4, 4, 4, 4], "-"), group(c, [4, 4, 4, 4], "."),
            group(c, [4, 4, 4, 4], "/"), group(c, [4, 4, 4, 4], " ") + " 12/29 123", fullwidth(c),
            group(c.replace("0", "O"), [4, 4, 4, 4], " ")]


def email_spellings(local, dom):
    name, tld = dom.rsplit(".", 1)
    return [local + "@" + dom, local + " at " + name + " dot " + tld, local + "[at]" + dom, local + "(at)" + name + "(dot)" + tld,
            local + " @ " + dom, local + "＠" + dom, local + "艾特" + name + "点" + tld, local + "@例子.中国",
            local.upper() + "@" + dom.upper(), local + "%40" + dom, local + "&#64;" + dom, local + "[@]" + dom,
            local + "@163", local + ".and.a.local.part.longer.than.sixty.four.bytes.for.rfc.5321@" + dom]


def ip_spellings(ip):
    return [ip, ip + ":8080", "ip:" + ip, "IP：" + ip, fullwidth(ip), "[::ffff:%s]:443" % ip]


SENSITIVE_QUERIES = ["醫院 掛號", "同性戀 酒吧", "憂鬱症 怎麼辦", "ＨＩＶ 检测", "艾 滋 病 症状", "艾\u200b滋病",
                     "h.i.v test", "H I V test", "CANCER treatment", "糖尿病饮食", "清真寺 在哪"]
SENSITIVE_URLS = ["https://xn--zbxu2mepl.com/", "https://x.cn/%E5%8C%BB%E9%99%A2/list",
                  "https://x.cn/%E9%86%AB%E9%99%A2/list", "https://HOSPITAL.example.com/",
                  "https://example.com/topics/h-i-v/faq", "https://ｈｏｓｐｉｔａｌ.example.cn/"]


def device_id(rng):
    """A MAC address (12 hex digits with at least three letters and three
    digits, as most are) and an advertising id (UUID)."""
    while True:
        mac = "%012x" % rng.getrandbits(48)
        if sum(c.isdigit() for c in mac) >= 3 and sum(c.isalpha() for c in mac) >= 3:
            break
    u = "%032X" % rng.getrandbits(128)
    return mac, "-".join((u[:8], u[8:12], u[12:16], u[16:20], u[20:]))


def device_id_spellings(mac, uuid):
    pairs = [mac[k:k + 2] for k in range(0, 12, 2)]
    return [":".join(pairs), "-".join(pairs).upper(), ".".join((mac[:4], mac[4:8], mac[8:])), mac.upper(),
            "0x" + mac, uuid, uuid.lower()]


def embedded_v6(ip):
    a = [int(x) for x in ip.split(".")]
    v4hex = "%02x%02x:%02x%02x" % tuple(a)
    return ["2002:%s::1" % v4hex, "64:ff9b::%s" % ip, "::%s" % ip, "::ffff:0:%s" % ip,
            "2001:0:4136:e378:8000:63bf:%02x%02x:%02x%02x" % tuple(255 - x for x in a)]


def records(n, seed=2026, ts=1793613600000):
    rng = random.Random(seed)
    consent = {"location": True, "ads_personalization": True, "analytics": True}
    for i in range(n):
        phone = "13%d%08d" % (rng.randint(0, 9), rng.randint(0, 10 ** 8 - 1))
        pid = cn_id(rng)
        card = luhn_card(rng)
        local = "zhang%05d" % rng.randint(0, 99999)
        dom = rng.choice(["example.com", "qq.com", "163.com", "mail.example.cn"])
        ip = "%d.%d.%d.%d" % (rng.choice([58, 101, 117, 183, 203, 222]), rng.randint(0, 255), rng.randint(0, 255),
                              rng.randint(1, 254))
        handle = "hn%07d" % rng.randint(0, 10 ** 7 - 1)
        mac, uuid = device_id(rng)
        devs = device_id_spellings(mac, uuid)
        wechat = "zs_%s%d" % ("".join(rng.choice("abcdefghjk") for _ in range(3)), rng.randint(1970, 2009))
        labeled = ["加我微信 " + wechat, "微信号：" + wechat, "vx: " + wechat, "QQ号 %06d" % rng.randint(10000, 999999),
                   "@" + wechat, "wechat id: " + wechat]
        plate = "%s%s%05d" % (rng.choice("京沪粤川浙"), rng.choice("ABCDE"), rng.randint(0, 99999))
        passport = "E%08d" % rng.randint(0, 10 ** 8 - 1)
        room = "%d-%d-%d" % (rng.randint(1, 30), rng.randint(1, 9), rng.randint(101, 3305))
        street = "%d %s" % (rng.randint(10, 99999), rng.choice(["Baker Street", "W 34th St", "Main St.", "Elm Ave"]))
        others = [plate, "车牌 " + plate[0] + plate[1] + "·" + plate[2:], passport, "护照号：" + passport,
                  "密码 " + wechat.upper(), "寄到 " + street, "小区" + room]
        needles = {phone, pid, pid.lower(), card, local, ip, handle, wechat, plate, passport, street, room} | set(devs)
        pii = (phone_spellings(phone) + id_spellings(pid) + card_spellings(card) + email_spellings(local, dom) +
               ip_spellings(ip) + ["zhangsan-" + handle] + devs + labeled + others)
        s = lambda: rng.choice(pii)  # noqa: E731
        hosts = ["%s.example.cn" % phone, "%s.cn" % pid, "zhangsan-%s.github.io" % handle,
                 str(int.from_bytes(bytes(int(x) for x in ip.split(".")), "big")), "0x%08X" % int.from_bytes(
                     bytes(int(x) for x in ip.split(".")), "big"),
                 ".".join("%03d" % int(x) for x in ip.split(".")), ip + ".nip.io", ip.replace(".", "-") + ".sslip.io",
                 "%s.例子.中国" % phone, "[%s]" % embedded_v6(ip)[0], "xn--%s-abc.com" % phone]
        url = "https://%s/p/%s?u=%s" % (rng.choice(hosts), s(), s())
        ua = "Mozilla/5.0 (Linux; Android 13; %s) AppleWebKit/537.36 Chrome/%s Safari/537.36" % (s(), phone)
        versions = [phone, "v" + phone, phone[:3] + "." + phone[3:], "1." + phone, fullwidth(phone), pid, "5.2.13-" + phone]
        ts_i = ts + i * 1000
        kind = i % 3
        if kind == 0:
            rec = {"event_id": "e-%s-%d" % (phone, i), "ts": ts_i, "user_id": s(), "phone": s(), "email": s(),
                   "device_id": s(), "ip": rng.choice([ip] + embedded_v6(ip)), "user_agent": ua,
                   "os": "Android %s" % rng.choice([phone, pid, "13"]), "app_version": rng.choice(versions),
                   "lat": 39.9 + rng.random() / 10, "lon": 116.3 + rng.random() / 10, "birth_year": 1985,
                   "consent": consent}
            yield "DeviceLog", rec, needles, False
        elif kind == 1:
            rec = {"event_id": "a-%s-%d" % (phone, i), "ts": ts_i, "ip": rng.choice([ip] + embedded_v6(ip)),
                   "cookie_id": s(), "user_id": s(), "url": url, "referrer": "https://%s/" % rng.choice(hosts),
                   "user_agent": ua, "status": 200, "bytes": 1234, "consent": consent}
            yield "AccessLog", rec, needles, False
        else:
            sensitive = i % 7 == 2
            query = " ".join(rng.sample(pii, 3)) + " 北京 天气"
            clicked = url
            if sensitive:
                if rng.random() < 0.5:
                    query = rng.choice(SENSITIVE_QUERIES) + " " + s()
                else:
                    clicked = rng.choice(SENSITIVE_URLS) + "?u=" + phone
            rec = {"event_id": "s-%s-%d" % (phone, i), "ts": ts_i, "user_id": s(), "device_id": s(),
                   "ip": rng.choice([ip] + embedded_v6(ip)), "query": query, "clicked_url": clicked,
                   "lat": 31.2 + rng.random() / 10, "lon": 121.4 + rng.random() / 10, "birth_year": 1990,
                   "consent": consent}
            yield "SearchLog", rec, needles, sensitive
