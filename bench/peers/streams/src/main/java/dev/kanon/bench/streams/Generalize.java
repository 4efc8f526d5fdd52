package dev.kanon.bench.streams;

import java.nio.charset.StandardCharsets;

/**
 * Quasi-identifier generalization, as kanon's generalize.c:
 * geohash cells, IP prefixes (inet_pton/inet_ntop semantics, IPv4 carried in
 * IPv6 generalized as IPv4), time buckets, user agents, OS and app versions.
 * Strings are looked at as their UTF-8 bytes, like kanon does.
 */
final class Generalize {
    private Generalize() {}

    // ---- geohash ----

    private static final char[] B32 = "0123456789bcdefghjkmnpqrstuvwxyz".toCharArray();

    static String geohash(double lat, double lon, int precision) {
        if (precision < 1 || precision > 12 || !Double.isFinite(lat) || !Double.isFinite(lon)
                || lat < -90 || lat > 90 || lon < -180 || lon > 180)
            return null;
        double latLo = -90, latHi = 90, lonLo = -180, lonHi = 180;
        boolean even = true; // geohash starts with a longitude bit
        char[] out = new char[precision];
        for (int i = 0; i < precision; i++) {
            int ch = 0;
            for (int b = 0; b < 5; b++) {
                ch <<= 1;
                if (even) {
                    double mid = (lonLo + lonHi) / 2;
                    if (lon >= mid) { ch |= 1; lonLo = mid; } else { lonHi = mid; }
                } else {
                    double mid = (latLo + latHi) / 2;
                    if (lat >= mid) { ch |= 1; latLo = mid; } else { latHi = mid; }
                }
                even = !even;
            }
            out[i] = B32[ch];
        }
        return new String(out);
    }

    // ---- IP prefixes ----

    private static int hexVal(byte c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    /** glibc's inet_pton4 over s[from..to) into dst[at..at+4); false if not an address. */
    private static boolean pton4(byte[] s, int from, int to, byte[] dst, int at) {
        int[] tmp = new int[4];
        int tp = 0, octets = 0;
        boolean sawDigit = false;
        for (int i = from; i < to; i++) {
            byte ch = s[i];
            if (ch >= '0' && ch <= '9') {
                int nw = tmp[tp] * 10 + (ch - '0');
                if (sawDigit && tmp[tp] == 0) return false;
                if (nw > 255) return false;
                tmp[tp] = nw;
                if (!sawDigit) {
                    if (++octets > 4) return false;
                    sawDigit = true;
                }
            } else if (ch == '.' && sawDigit) {
                if (octets == 4) return false;
                tp++;
                sawDigit = false;
            } else {
                return false;
            }
        }
        if (octets < 4) return false;
        for (int i = 0; i < 4; i++) dst[at + i] = (byte) tmp[i];
        return true;
    }

    /** glibc's inet_pton6 over s[0..len) into dst[0..16). */
    private static boolean pton6(byte[] s, int len, byte[] dst) {
        byte[] tmp = new byte[16];
        int tp = 0, colonp = -1, src = 0, curtok, xdigits = 0, val = 0;
        if (len == 0) return false;
        if (s[0] == ':') {
            src++;
            if (src == len || s[src] != ':') return false;
        }
        curtok = src;
        while (src < len) {
            byte ch = s[src++];
            int digit = hexVal(ch);
            if (digit >= 0) {
                if (xdigits == 4) return false;
                val = val << 4 | digit;
                if (val > 0xffff) return false;
                xdigits++;
                continue;
            }
            if (ch == ':') {
                curtok = src;
                if (xdigits == 0) {
                    if (colonp >= 0) return false;
                    colonp = tp;
                    continue;
                } else if (src == len) {
                    return false;
                }
                if (tp + 2 > 16) return false;
                tmp[tp++] = (byte) (val >> 8);
                tmp[tp++] = (byte) val;
                xdigits = 0;
                val = 0;
                continue;
            }
            if (ch == '.' && tp + 4 <= 16 && pton4(s, curtok, len, tmp, tp)) {
                tp += 4;
                xdigits = 0;
                break;
            }
            return false;
        }
        if (xdigits > 0) {
            if (tp + 2 > 16) return false;
            tmp[tp++] = (byte) (val >> 8);
            tmp[tp++] = (byte) val;
        }
        if (colonp >= 0) {
            if (tp == 16) return false; // :: would expand to a zero-width field
            int n = tp - colonp;
            System.arraycopy(tmp, colonp, tmp, 16 - n, n);
            for (int i = colonp; i < 16 - n; i++) tmp[i] = 0;
            tp = 16;
        }
        if (tp != 16) return false;
        System.arraycopy(tmp, 0, dst, 0, 16);
        return true;
    }

    private static void maskBits(byte[] a, int nbytes, int bits) {
        for (int i = 0; i < nbytes; i++) {
            int keep = bits - 8 * i;
            if (keep >= 8) continue;
            a[i] &= keep <= 0 ? 0 : (byte) (0xff << (8 - keep));
        }
    }

    private static boolean zeros(byte[] a, int from, int n) {
        for (int i = from; i < from + n; i++)
            if (a[i] != 0) return false;
        return true;
    }

    private static boolean eq(byte[] a, int[] pat) {
        for (int i = 0; i < pat.length; i++)
            if ((a[i] & 0xff) != pat[i]) return false;
        return true;
    }

    private static final int[] MAPPED = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    private static final int[] TRANSLATED = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    private static final int[] NAT64 = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    private static final int[] NAT64_LOCAL = {0, 0x64, 0xff, 0x9b, 0, 1};

    /** The IPv4 address an IPv6 one carries (mapped, translated, compatible, 6to4, Teredo, NAT64). */
    private static boolean embeddedV4(byte[] a, byte[] v4) {
        if (eq(a, MAPPED) || eq(a, TRANSLATED) || eq(a, NAT64) || (zeros(a, 0, 12) && !zeros(a, 12, 3))) {
            System.arraycopy(a, 12, v4, 0, 4);
            return true;
        }
        if (a[0] == 0x20 && a[1] == 0x02) {
            System.arraycopy(a, 2, v4, 0, 4);
            return true;
        }
        if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
            for (int i = 0; i < 4; i++) v4[i] = (byte) ~a[12 + i];
            return true;
        }
        if (eq(a, NAT64_LOCAL)) {
            v4[0] = a[6]; v4[1] = a[7]; v4[2] = a[9]; v4[3] = a[10];
            return true;
        }
        return false;
    }

    private static void ntop4(byte[] a, int at, StringBuilder sb) {
        for (int i = 0; i < 4; i++) {
            if (i > 0) sb.append('.');
            sb.append(a[at + i] & 0xff);
        }
    }

    /** glibc's inet_ntop6. */
    private static void ntop6(byte[] a, StringBuilder sb) {
        int[] w = new int[8];
        for (int i = 0; i < 16; i++) w[i / 2] |= (a[i] & 0xff) << ((1 - (i % 2)) << 3);
        int bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
        for (int i = 0; i < 8; i++) {
            if (w[i] == 0) {
                if (curBase == -1) { curBase = i; curLen = 1; } else curLen++;
            } else if (curBase != -1) {
                if (bestBase == -1 || curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
                curBase = -1;
            }
        }
        if (curBase != -1 && (bestBase == -1 || curLen > bestLen)) { bestBase = curBase; bestLen = curLen; }
        if (bestBase != -1 && bestLen < 2) bestBase = -1;
        for (int i = 0; i < 8; i++) {
            if (bestBase != -1 && i >= bestBase && i < bestBase + bestLen) {
                if (i == bestBase) sb.append(':');
                continue;
            }
            if (i != 0) sb.append(':');
            if (i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && w[5] == 0xffff))) {
                ntop4(a, 12, sb);
                return; // (glibc: a dotted tail ends the address; no trailing ':')
            }
            sb.append(Integer.toHexString(w[i]));
        }
        if (bestBase != -1 && bestBase + bestLen == 8) sb.append(':');
    }

    /** "net/bits" of ip[0..len), or null when it is not an IPv4 or IPv6 address. */
    static String ipPrefix(byte[] ip, int len, int v4Bits, int v6Bits) {
        byte[] a = new byte[16], v4 = new byte[4];
        if (len == 0 || len >= 47) // INET6_ADDRSTRLEN + 1
            return null;
        boolean colon = false;
        for (int i = 0; i < len && !colon; i++) colon = ip[i] == ':';
        StringBuilder sb = new StringBuilder(24);
        if (colon) {
            if (!pton6(ip, len, a)) return null;
            if (!embeddedV4(a, v4)) {
                maskBits(a, 16, v6Bits);
                ntop6(a, sb);
                return sb.append('/').append(v6Bits).toString();
            }
            System.arraycopy(v4, 0, a, 0, 4); // generalized as the IPv4 it carries
        } else if (!pton4(ip, 0, len, a, 0)) {
            return null;
        }
        maskBits(a, 4, v4Bits);
        ntop4(a, 0, sb);
        return sb.append('/').append(v4Bits).toString();
    }

    static long timeBucket(long ts, long bucket) {
        return Math.floorDiv(ts, bucket) * bucket;
    }

    // ---- user agents ----

    /** A parsed user agent: browser family and major, OS family and major (-1: none). */
    static final class Agent {
        String browser;
        int browserMajor = -1;
        String os;
        int osMajor = -1;
    }

    private static byte lower(byte c) {
        return c >= 'A' && c <= 'Z' ? (byte) (c + 32) : c;
    }

    private static final byte[][] BOT_WORDS = {ascii("bot"), ascii("spider"), ascii("crawl")};

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    private static boolean isBot(byte[] ua, int len) {
        for (int i = 0; i < len; i++) {
            byte c = lower(ua[i]);
            if (c != 'b' && c != 's' && c != 'c') continue;
            for (byte[] w : BOT_WORDS) {
                int n = w.length, k = 0;
                if (w[0] != c || i + n > len) continue;
                while (k < n && lower(ua[i + k]) == w[k]) k++;
                if (k == n) return true;
            }
        }
        return false;
    }

    /** Index just past the first occurrence of needle in hay[0..len), or -1. */
    private static int find(byte[] hay, int len, byte[] needle) {
        int n = needle.length;
        outer:
        for (int i = 0; i + n <= len; i++) {
            for (int k = 0; k < n; k++)
                if (hay[i + k] != needle[k]) continue outer;
            return i + n;
        }
        return -1;
    }

    /** Leading decimal number at p (at most 3 digits), or -1. */
    private static int majorAt(byte[] s, int p, int end) {
        int v = -1;
        while (p >= 0 && p < end && s[p] >= '0' && s[p] <= '9') {
            v = (v < 0 ? 0 : v) * 10 + (s[p++] - '0');
            if (v > 999) return -1;
        }
        return v;
    }

    private static final String[][] BROWSERS = {
        {"Edg", "Edge"}, {"EdgA", "Edge"}, {"EdgiOS", "Edge"}, {"OPR", "Opera"},
        {"SamsungBrowser", "Samsung Internet"}, {"MicroMessenger", "WeChat"},
        {"MQQBrowser", "QQ Browser"}, {"QQBrowser", "QQ Browser"}, {"UCBrowser", "UC Browser"},
        {"baiduboxapp", "Baidu"}, {"HuaweiBrowser", "Huawei Browser"}, {"MiuiBrowser", "MIUI Browser"},
        {"YaBrowser", "Yandex"}, {"FxiOS", "Firefox"}, {"Firefox", "Firefox"}, {"CriOS", "Chrome"},
        {"Chrome", "Chrome"}, {"okhttp", "okhttp"}, {"curl", "curl"}, {"Dalvik", "Android WebView"},
    };
    private static final byte[][] BROWSER_TOKENS = new byte[BROWSERS.length][];
    static {
        for (int i = 0; i < BROWSERS.length; i++) BROWSER_TOKENS[i] = ascii(BROWSERS[i][0]);
    }

    private static boolean tokenChar(byte c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    }

    private static final byte[] MSIE = ascii("MSIE "), TRIDENT = ascii("Trident/"), RV = ascii("rv:"),
            SAFARI = ascii("Safari/"), WEBKIT = ascii("AppleWebKit/"), VERSION = ascii("Version/"),
            HARMONY = ascii("HarmonyOS"), ANDROID = ascii("Android"), IPHONE_OS = ascii("iPhone OS "),
            CPU_OS = ascii("CPU OS "), WINDOWS_NT = ascii("Windows NT "), MAC_OS_X = ascii("Mac OS X "),
            CROS = ascii("CrOS "), LINUX = ascii("Linux");

    private static void browser(byte[] ua, int len, Agent a) {
        if (isBot(ua, len)) {
            a.browser = "bot";
            return;
        }
        // One pass over the '/'s: the product name before each is looked up;
        // the most specific entry found anywhere wins.
        int best = BROWSERS.length, ver = -1;
        for (int p = 0; p < len; p++) {
            if (ua[p] != '/') continue;
            int s = p;
            while (s > 0 && tokenChar(ua[s - 1])) s--;
            int n = p - s;
            for (int i = 0; i < best; i++) {
                byte[] t = BROWSER_TOKENS[i];
                if (t.length != n) continue;
                int k = 0;
                while (k < n && t[k] == ua[s + k]) k++;
                if (k == n) {
                    best = i;
                    ver = p + 1;
                    break;
                }
            }
        }
        if (best < BROWSERS.length) {
            a.browser = BROWSERS[best][1];
            a.browserMajor = majorAt(ua, ver, len);
            return;
        }
        int p;
        if ((p = find(ua, len, MSIE)) >= 0 || (find(ua, len, TRIDENT) >= 0 && (p = find(ua, len, RV)) >= 0)) {
            a.browser = "IE";
            a.browserMajor = majorAt(ua, p, len);
            return;
        }
        if (find(ua, len, SAFARI) >= 0 || find(ua, len, WEBKIT) >= 0) {
            a.browser = "Safari";
            p = find(ua, len, VERSION);
            a.browserMajor = p >= 0 ? majorAt(ua, p, len) : -1;
            return;
        }
        a.browser = "other";
    }

    private static void os(byte[] ua, int len, Agent a) {
        int p;
        if ((p = find(ua, len, HARMONY)) >= 0) {
            a.os = "HarmonyOS";
            a.osMajor = p < len && ua[p] == ' ' ? majorAt(ua, p + 1, len) : -1;
        } else if ((p = find(ua, len, ANDROID)) >= 0) {
            a.os = "Android";
            a.osMajor = p < len && ua[p] == ' ' ? majorAt(ua, p + 1, len) : -1;
        } else if ((p = find(ua, len, IPHONE_OS)) >= 0 || (p = find(ua, len, CPU_OS)) >= 0) {
            a.os = "iOS";
            a.osMajor = majorAt(ua, p, len);
        } else if ((p = find(ua, len, WINDOWS_NT)) >= 0) {
            a.os = "Windows";
            a.osMajor = majorAt(ua, p, len);
        } else if ((p = find(ua, len, MAC_OS_X)) >= 0) {
            a.os = "macOS";
            a.osMajor = majorAt(ua, p, len);
        } else if (find(ua, len, CROS) >= 0) {
            a.os = "ChromeOS";
        } else if (find(ua, len, LINUX) >= 0) {
            a.os = "Linux";
        } else {
            a.os = "other";
        }
    }

    static Agent parseUserAgent(byte[] ua, int len) {
        Agent a = new Agent();
        if (len > 1024) // real user agents are short
            len = 1024;
        browser(ua, len, a);
        os(ua, len, a);
        return a;
    }

    /**
     * Parsed user agents, direct-mapped by the string's hash like kanon's
     * 4096-slot cache (kn_ua_parse_cached). One per processor (per task).
     */
    static final class UaCache {
        private final String[] keys = new String[4096];
        private final Agent[] agents = new Agent[4096];

        Agent parse(byte[] ua, int len) {
            String key = new String(ua, 0, len, StandardCharsets.ISO_8859_1); // the bytes, one char each
            int slot = (key.hashCode() * 0x9E3779B9) >>> 20;
            if (!key.equals(keys[slot])) {
                agents[slot] = parseUserAgent(ua, len);
                keys[slot] = key;
            }
            return agents[slot];
        }
    }

    // ---- OS field ----

    private static final String[][] OS_FAMILIES = {
        {"android", "Android"}, {"ios", "iOS"}, {"iphone os", "iOS"}, {"ipados", "iOS"},
        {"harmonyos", "HarmonyOS"}, {"windows", "Windows"}, {"macos", "macOS"}, {"mac os x", "macOS"},
        {"linux", "Linux"}, {"chromeos", "ChromeOS"},
    };
    private static final byte[][] OS_PREFIXES = new byte[OS_FAMILIES.length][];
    static {
        for (int i = 0; i < OS_FAMILIES.length; i++) OS_PREFIXES[i] = ascii(OS_FAMILIES[i][0]);
    }

    /** Sets a.os and a.osMajor from an explicit OS field ("Android 12", "iOS 16.2"). */
    static void parseOs(byte[] os, int len, Agent a) {
        a.osMajor = -1;
        for (int i = 0; i < OS_PREFIXES.length; i++) {
            byte[] pre = OS_PREFIXES[i];
            int n = pre.length, k = 0;
            if (len < n) continue;
            while (k < n && lower(os[k]) == pre[k]) k++;
            if (k < n || !(len == n || os[n] == ' ' || os[n] == '/' || os[n] == '_')) continue;
            a.os = OS_FAMILIES[i][1];
            int p = n;
            while (p < len && (os[p] == ' ' || os[p] == '/' || os[p] == '_')) p++;
            a.osMajor = majorAt(os, p, len);
            return;
        }
        a.os = "other";
    }

    // ---- app version ----

    private static int skipDigits(byte[] v, int p, int end) {
        while (p < end && v[p] >= '0' && v[p] <= '9') p++;
        return p;
    }

    /** "major.minor" (each at most 3 digits), "other" when it has no such shape, null when empty. */
    static String appVersion(byte[] v, int len) {
        if (len == 0) return null;
        int p = 0;
        if (v[p] == 'v' || v[p] == 'V') p++;
        int major = p;
        p = skipDigits(v, p, len);
        int nmaj = p - major <= 3 ? p - major : 0, minor = -1, nmin = 0;
        if (nmaj > 0 && p + 1 < len && v[p] == '.' && v[p + 1] >= '0' && v[p + 1] <= '9') {
            minor = ++p;
            p = skipDigits(v, p, len);
            nmin = p - minor <= 3 ? p - minor : 0;
            if (nmin == 0) nmaj = 0;
        }
        // What follows must end the version ("5.2.13-beta" is 5.2).
        if (nmaj > 0 && p < len && ".-+_ ()\0".indexOf(v[p]) < 0) nmaj = 0;
        if (nmaj == 0) return "other";
        StringBuilder sb = new StringBuilder(8);
        for (int i = 0; i < nmaj; i++) sb.append((char) v[major + i]);
        if (nmin > 0) {
            sb.append('.');
            for (int i = 0; i < nmin; i++) sb.append((char) v[minor + i]);
        }
        return sb.toString();
    }
}
