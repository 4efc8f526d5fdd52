/* Every rule of the privacy policy, on both sides of each boundary. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "kt.h"
#include "policy.h"

#define T2026 1793613600000LL /* 2026-11-02T10:00Z */

static struct kn_config *cfg;
static struct kn_policy *pol;

static struct kn_event event(int analytics, int ads, int location)
{
	struct kn_event ev = {0};

	ev.type = KN_EV_SEARCH;
	ev.role[KN_ROLE_TIMESTAMP] = (struct kn_val){.type = KN_VAL_LONG, .l = T2026};
	ev.role[KN_ROLE_CONSENT_ANALYTICS] = (struct kn_val){.type = KN_VAL_BOOL, .b = analytics};
	ev.role[KN_ROLE_CONSENT_ADS] = (struct kn_val){.type = KN_VAL_BOOL, .b = ads};
	ev.role[KN_ROLE_CONSENT_LOCATION] = (struct kn_val){.type = KN_VAL_BOOL, .b = location};
	return ev;
}

static void set_str(struct kn_event *ev, int role, const char *s)
{
	ev->role[role] = (struct kn_val){.type = KN_VAL_STR, .s = {s, (uint32_t)strlen(s)}};
}

static void test_consent(void)
{
	struct kn_deid d = {0};
	enum kn_drop_reason why;
	struct kn_event ev = event(1, 1, 1);

	KT_CHECK(kn_policy_admit(pol, &ev, &d.minor, &why) == 0);
	ev = event(0, 1, 1);
	KT_CHECK(kn_policy_admit(pol, &ev, &d.minor, &why) == -1 && why == KN_DROP_NO_ANALYTICS);
	ev = event(1, 0, 1);
	KT_CHECK(kn_policy_admit(pol, &ev, &d.minor, &why) == -1 && why == KN_DROP_NO_ADS);
	/* No consent recorded at all: not consent (the safe default). */
	ev = event(1, 1, 1);
	ev.role[KN_ROLE_CONSENT_ANALYTICS].type = KN_VAL_NULL;
	KT_CHECK(kn_policy_admit(pol, &ev, &d.minor, &why) == -1 && why == KN_DROP_NO_ANALYTICS);
	/* Location: no cell and no IP prefix without it. */
	ev = event(1, 1, 0);
	snprintf(d.geo_cell, sizeof(d.geo_cell), "wx4g0");
	snprintf(d.ip_prefix, sizeof(d.ip_prefix), "203.0.113.0/24");
	kn_policy_finish(pol, &ev, &d);
	KT_STREQ(d.geo_cell, "");
	KT_STREQ(d.ip_prefix, "");
	ev = event(1, 1, 1);
	snprintf(d.geo_cell, sizeof(d.geo_cell), "wx4g0");
	snprintf(d.ip_prefix, sizeof(d.ip_prefix), "203.0.113.0/24");
	kn_policy_finish(pol, &ev, &d);
	KT_STREQ(d.geo_cell, "wx4g0");
	KT_STREQ(d.ip_prefix, "203.0.113.0/24");
}

/* A minor's event: dropped (why = minor) by default; admitted with the
 * minor mark under policy.minors_in_deid. Returns whether it is a minor's. */
static bool minor(struct kn_event *ev)
{
	enum kn_drop_reason why = KN_DROP_REASONS;
	bool m = false;
	int rc = kn_policy_admit(pol, ev, &m, &why);

	if (cfg->minors_in_deid)
		KT_CHECK(rc == 0);
	else
		KT_CHECK(rc == (m ? -1 : 0) && (!m || why == KN_DROP_MINOR));
	return m;
}

static void test_minors_boundary(void)
{
	struct kn_event ev = event(1, 1, 1);

	/* 2026 - 2008 = 18: turns 18 some day in 2026, so still a minor all year. */
	ev.role[KN_ROLE_BIRTH_YEAR] = (struct kn_val){.type = KN_VAL_LONG, .l = 2008};
	KT_CHECK(minor(&ev));
	ev.role[KN_ROLE_BIRTH_YEAR].l = 2007; /* 19 by year: certainly 18 */
	KT_CHECK(!minor(&ev));
	/* On New Year's Eve and New Year's Day of the boundary year. */
	ev.role[KN_ROLE_BIRTH_YEAR].l = 2008;
	ev.role[KN_ROLE_TIMESTAMP].l = 1798761599999LL; /* 2026-12-31T23:59:59.999Z */
	KT_CHECK(minor(&ev));
	ev.role[KN_ROLE_TIMESTAMP].l = 1798761600000LL; /* 2027-01-01T00:00Z */
	KT_CHECK(!minor(&ev));
	/* Unknown age: adult by default, a minor when configured so. */
	ev.role[KN_ROLE_BIRTH_YEAR].type = KN_VAL_NULL;
	KT_CHECK(!minor(&ev));
	cfg->unknown_age_is_minor = true;
	KT_CHECK(minor(&ev));
	cfg->unknown_age_is_minor = false;
	/* A stricter minor age moves the boundary. */
	cfg->minor_age = 20;
	ev.role[KN_ROLE_BIRTH_YEAR] = (struct kn_val){.type = KN_VAL_LONG, .l = 2007};
	KT_CHECK(minor(&ev));
	cfg->minor_age = 18;
}

/* The minor check's calendar year, by arithmetic, agrees with gmtime_r at
 * every year's first and last millisecond from 1600 to 2400 (leap days,
 * centuries, 400-year eras, before 1970) and at random instants between. */
static void test_utc_year(void)
{
	uint64_t x = 88172645463325252ULL;

	for (int y = 1600; y <= 2400; y++) {
		struct tm tm = {.tm_year = y - 1900, .tm_mday = 1};
		int64_t first = (int64_t)timegm(&tm) * 1000;
		KT_CHECK(kn_utc_year(first) == y);
		KT_CHECK(kn_utc_year(first - 1) == y - 1);
	}
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int64_t ms = (int64_t)(x % 25000000000000ULL) - 12000000000000LL;
		time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		KT_CHECK(kn_utc_year(ms) == tm.tm_year + 1900);
	}
}

/* policy.minors_in_deid keeps a minor's event, without where the child is. */
static void test_minors_kept_when_allowed(void)
{
	struct kn_event ev = event(1, 1, 1);
	struct kn_deid d = {0};

	cfg->minors_in_deid = true;
	ev.role[KN_ROLE_BIRTH_YEAR] = (struct kn_val){.type = KN_VAL_LONG, .l = 2015};
	KT_CHECK(minor(&ev));
	d.minor = true;
	snprintf(d.geo_cell, sizeof(d.geo_cell), "wx4g0");
	snprintf(d.ip_prefix, sizeof(d.ip_prefix), "203.0.113.0/24");
	kn_policy_finish(pol, &ev, &d);
	KT_STREQ(d.geo_cell, "");
	KT_STREQ(d.ip_prefix, "");
	cfg->minors_in_deid = false;
}

static struct kn_deid finish_query(const char *q, const char *url)
{
	struct kn_deid d = {0};
	struct kn_event ev = event(1, 1, 1);

	if (q)
		set_str(&ev, KN_ROLE_QUERY, q);
	if (url) {
		set_str(&ev, KN_ROLE_CLICKED_URL, url);
		snprintf(d.url_domain, sizeof(d.url_domain), "some.host");
	}
	/* What stage 3 had made of the rest of the event. */
	d.has_pid[KN_ID_USER] = true;
	snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "0123456789abcdef0123456789abcdef");
	snprintf(d.geo_cell, sizeof(d.geo_cell), "wx4g0");
	snprintf(d.ip_prefix, sizeof(d.ip_prefix), "1.2.3.0/24");
	snprintf(d.ua_browser, sizeof(d.ua_browser), "Chrome");
	snprintf(d.app_version, sizeof(d.app_version), "5.3");
	d.ua_browser_major = 114, d.os_major = 12;
	kn_policy_finish(pol, &ev, &d);
	return d;
}

static void test_sensitive(void)
{
	struct kn_deid d;
	const char *sensitive[] = {"感冒 吃什么药",  "附近的清真寺",  "糖尿病 饮食",
				   "Church near me", "HIV test",      "破产 怎么办",
				   "同性恋 酒吧",    "犯罪记录 查询", "少数民族 政策"};
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++) {
		d = finish_query(sensitive[i], "https://www.baidu.com/s");
		KT_CHECK(d.sensitive);
		KT_STREQ(d.query_category, "withheld");
		KT_STREQ(d.url_domain, ""); /* the URL goes too */
		KT_STREQ(d.query, "");
		/* and all that links it to a person: the category beside a
		 * pseudonym would be the sensitive fact itself */
		KT_CHECK(!d.has_pid[KN_ID_USER] && !d.geo_cell[0] && !d.ip_prefix[0]);
		KT_CHECK(!d.ua_browser[0] && !d.app_version[0] && d.ua_browser_major == -1 &&
			 d.os_major == -1);
	}
	/* A URL's host or path alone is enough. */
	d = finish_query("news", "https://www.example.com/health/cancer-treatment");
	KT_CHECK(d.sensitive && !strcmp(d.query_category, "withheld"));
	d = finish_query(NULL, "https://hospital.example.cn/");
	KT_CHECK(d.sensitive);
	/* Near misses stay. */
	d = finish_query("天气预报", "https://www.baidu.com/s?wd=cancer");
	KT_CHECK(!d.sensitive);
	KT_STREQ(d.query_category, "weather");
	KT_STREQ(d.url_domain, "some.host");
	KT_CHECK(d.has_pid[KN_ID_USER] && !strcmp(d.geo_cell, "wx4g0") &&
		 d.ua_browser_major == 114);
}

/* The same terms in any spelling: every one of these is withheld. */
static void test_sensitive_spellings(void)
{
	const char *queries[] = {
		"醫院 掛號",	      /* traditional 医院 */
		"同性戀 酒吧",	      /* 同性恋 */
		"憂鬱症 怎麼辦",      /* 忧郁症 (depression: 抑郁) */
		"ＨＩＶ 检测",	      /* full-width Latin */
		"艾 滋 病 症状",      /* spaced CJK */
		"艾\xe2\x80\x8b滋病", /* zero-width space inside */
		"h.i.v test",	      /* dotted letters */
		"H I V test",	      /* spaced letters */
		"CANCER treatment",   /* case */
		"gays near me",	      /* inflections of short terms */
		"lgbtq events",
		"jailed for",
		"pornhub",
		"愛滋病 检测", /* the Taiwan standard spelling: 爱滋病 after folding */
		"憂鬱 怎麼辦",
		"xn--zbxu2mepl.com",			 /* punycode pasted into a query */
		"%E8%89%BE%E6%BB%8B%E7%97%85 treatment", /* percent-encoded 艾滋病 */
		"艾13812345678滋病", /* joined once the phone is scrubbed: 艾<PHONE>滋病 */
		"艾1234567滋病",
		"hiv%61 test",		 /* "hiva" decoded, "hiv 61" as typed */
		"%u827e%u6ecb%u75c5",	 /* %uXXXX escapes of 艾滋病 */
		"aizibing",		 /* pinyin */
		"ai zi bing zen me ban", /* pinyin, syllables apart */
		"tong xing lian",
		"乙肝 能治好吗",
		"suicide hotline",
		"基佬 酒吧",
		"网贷 还不起",
		"halal restaurant", /* a diet that says a religion */
		"哮喘 怎么治",
		"醫生 推薦", /* traditional 医生 */
		"亲子鉴定 多少钱",
		"alzheimers symptoms",
		"做禮拜 時間",
		"pawn shop near me",
		"ＤＲＵＮＫ driving lawyer",
		"肝癌 晚期",
		"无痛人流 医院",
		"tinder date",
		"工會 維權",
		"ivf clinic",
		"老年痴呆 早期",
		"antidepressants side effects",
		"ptsd treatment",
		"性侵 报警",
		"家暴 求助",
		"hpv疫苗 预约",
		"domestic violence shelter",
		"艾<br>滋病",	/* markup between the letters */
		"<gay> dating", /* a word in brackets is no markup */
		"<hiv test> near me",
		"<i have hiv>", /* a tag's name, then words: still words */
		"艾<b>滋</b>病",
		"h<br>i<br>v test",
		"艾丨滋丨病", /* letters written as bars and dashes */
		"艾ー滋ー病",
	};
	const char *urls[] = {
		"https://xn--zbxu2mepl.com/",			    /* punycode 艾滋病 */
		"https://x.cn/%E5%8C%BB%E9%99%A2/list",		    /* percent-encoded 医院 */
		"https://x.cn/%E9%86%AB%E9%99%A2/list",		    /* percent-encoded 醫院 */
		"https://HOSPITAL.example.com/",		    /* case */
		"https://example.com/topics/h-i-v/faq",		    /* separators */
		"https://x.cn/%25E5%258C%25BB%25E9%2599%25A2/list", /* 医院, encoded twice */
		"https://www.hivtest.org/",
		/* several words joined in a host or a CamelCase path */
		"https://www.plannedparenthood.org/",
		"https://mentalhealth.gov/",
		"https://x.com/PlannedParenthood",
		"https://www.paydayloan.com/apply",
		"https://blacklivesmatter.com/",
		/* sites whose name is the sensitive fact */
		"https://www.blued.cn/",
		"https://www.haodf.com/doctor/1.html",
		"https://www.39.net/",
		"https://m.dxy.cn/",
		"https://aa.org/",
		"https://www.jw.org/zh-hans/",
		"https://www.webmd.com/",
		"https://example.com/%B0%AC%D7%CC%B2%A1/", /* 艾滋病 escaped as GBK */
		"http://bbs.example.cn/tag/%B0%A9%D6%A2",  /* 癌症: B0 A9 looks like a cut */
		"https://example.cn/%D2%BD%D4%BA/",	   /* 医院 as GBK, "ҽԺ" as UTF-8 */
		/* the whole URL is read, whatever it holds before its host */
		"porn.com/r/http://example.com/",
		"http://pornhub.com@example.com/",
		"/hiv/x/https://a.com",
		/* a short term glued to other words in a host label */
		"https://www.gayhealth.com/",
		"https://www.sexshop.com/",
		"https://www.91porn.com/",
		"https://www.hivplus.com/",
		"https://www.aidsmap.com/",
		"https://user:pw@www.ivfclinic.com:8443/x",
		"//gaytimes.co.uk/",
		/* hosts as a browser finds them: backslashes, odd slashes */
		"http:\\\\www.gayhealth.com\\x",
		"https:/\\sexshop.com",
		"http:///ivfclinic.com",
		/* tabs and newlines a browser deletes; controls it trims */
		"http://p\tornhub.com",
		"http://h\nivtest.org",
		"http://G\tAY.com",
		"\x01http://gayhealth.com",
		"ht\ttp://gayhealth.com",
		"http:/\t/lgbtnews.com",
		"https\r://sexshop.de",
		/* a non-special scheme's userinfo may hold a '\\' */
		"android-app://evil.com\\@gayhealth.com/",
		/* a host a browser would not visit, but a log may have cut */
		"user:pw@gayhealth.com/x",
		"mailto:x@sexshop.com",
		"file:///hivclinic.org/x",
		"jailhouse.example.net/inmates",
	};
	/* ...and not before the words it begins only by chance */
	const char *near_urls[] = {
		"https://archive.org/", "https://hive.com/", "https://www.sussex.ac.uk/",
		"https://www.gaylord.com/", "https://www.standard.co.uk/",
		"https://jailbreak.example.com/", "https://dwight.example.com/",
		"http://gaydon.example.com:80/", "https://www.essex.gov.uk/",
		"https://example.com/dwindling-stocks", "https://china.org/na-organic",
		"https://example.com/stdio.h",
		/* the second review's: only marked terms glue, only in a host,
		 * and not after "1st" */
		"https://www.stdaily.com/", "https://www.1stdibs.com/", "https://hivi.com/",
		"https://www.cnnindonesia.com/gaya-hidup", "https://en.wikipedia.org/wiki/Sexism",
		"https://youtu.be/PPFw5HivoVl", "https://bit.ly/4Hiv9x2",
		"https://selfharmony.com/", "https://hpvictus.example.com/",
		"https://docs.python.org/3/library/stdtypes.html",
		"https://www.instagram.com/dwiputra/"};
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		struct kn_deid d = finish_query(queries[i], NULL);
		KT_CHECK(d.sensitive);
		if (!d.sensitive)
			fprintf(stderr, "  missed query: %s\n", queries[i]);
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct kn_deid d = finish_query("news", urls[i]);
		KT_CHECK(d.sensitive);
		if (!d.sensitive)
			fprintf(stderr, "  missed url: %s\n", urls[i]);
	}
	for (size_t i = 0; i < sizeof(near_urls) / sizeof(near_urls[0]); i++) {
		struct kn_deid d = finish_query("news", near_urls[i]);
		KT_CHECK(!d.sensitive);
		if (d.sensitive)
			fprintf(stderr, "  false positive url: %s\n", near_urls[i]);
	}
	/* A term late in a text that grows past the fold's buffer (U+FDFA
	 * becomes 33 bytes) is seen too: the text is also checked in pieces. */
	char late_q[1400], *lw = late_q;
	for (int i = 0; i < 400; i++)
		lw += sprintf(lw, "\xef\xb7\xba");
	sprintf(lw, " hiv test");
	KT_CHECK(finish_query(late_q, NULL).sensitive);
	/* ...however long (not only to 64 KiB), and escapes that pad right up
	 * to an escaped term do not make it GBK noise at a piece's cut */
	static char big[80010];
	for (int i = 0; i < 40000; i++)
		memcpy(big + 2 * i, "a ", 2);
	strcpy(big + 80000, "hiv");
	KT_CHECK(finish_query(big, NULL).sensitive);
	for (int k = 124; k < 400; k += 7) {
		char pad[4000], *pw = pad;
		for (int i = 0; i < k; i++)
			pw += sprintf(pw, "%%EF%%B7%%BA");
		sprintf(pw, "%%E8%%89%%BE%%E6%%BB%%8B%%E7%%97%%85");
		KT_CHECK(finish_query(pad, NULL).sensitive);
		if (!finish_query(pad, NULL).sensitive)
			fprintf(stderr, "  missed after %d escaped U+FDFA\n", k);
	}
	/* Pieces make no word starts of their own: a word across any cut
	 * stays itself (middlesex has no "sex"), in a text the fold takes
	 * whole and in one it must read in pieces. */
	for (size_t len = 400; len <= 6000; len += 5600) {
		static char w[6100];
		for (size_t at = 200; at < len - 20; at += 37) {
			memset(w, 'a', len);
			for (size_t k = 9; k < len; k += 10)
				w[k] = ' ';
			memcpy(w + at, " middlesex ", 11);
			w[len] = '\0';
			KT_CHECK(!finish_query(w, NULL).sensitive);
		}
	}
	/* Bytes that are no UTF-8 (decode does not check) end: no piece may
	 * start before the text or fail to move on. */
	char junk[500];
	memset(junk, 0x80, sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	junk[100] = 'a';
	KT_CHECK(!finish_query(junk, NULL).sensitive);
	junk[0] = 'a';
	KT_CHECK(!finish_query(junk, NULL).sensitive);
	/* A term early in a text that grows 18-fold when folded (U+FDFA) is
	 * still seen: the text is folded in pieces, not cut in half. */
	char long_q[3800], *w = long_q;
	memset(w, 'a', 900);
	w += 900;
	w += sprintf(w, " 艾滋病 ");
	for (int i = 0; i < 900; i++)
		w += sprintf(w, "\xef\xb7\xba"); /* U+FDFA */
	struct kn_deid dl = finish_query(long_q, NULL);
	KT_CHECK(dl.sensitive);
	KT_STREQ(dl.query, "");
	/* English terms match at a word start only: these are not health. */
	const char *near[] = {"blueday.com",
			      "banana.org",
			      "china.org",
			      "aa organic fertilizer",
			      "na organização",
			      "39 network cable",
			      "jw organ concert",
			      "indebted to you",
			      "self harmony",
			      "dating apple",
			      "guahaoxin 邮费",
			      "wang minghui professor",
			      "best deal shoes",
			      "standard size",
			      "braids style",
			      "gaydon road",
			      "stdio.h",
			      "hivemind",
			      "女同事生日礼物",
			      "男同学聚会",
			      "基督山伯爵",
			      "经历战火的洗礼",
			      "双相不锈钢",
			      "unemployment rate",
			      "失业率",
			      "中风险地区",
			      "景点人流量",
			      "印第安纳波利斯",
			      "占中国gdp比重",
			      "united arab emirates",
			      "资产负债表",
			      "故障诊断",
			      "democratic republic of the congo",
			      "员工会议记录",
			      "个人权益保护",
			      "法人权利",
			      "小麦加工",
			      "燕麦加牛奶",
			      "体育频道观看直播",
			      "一次性交清房款",
			      "与异性交往的技巧",
			      "个性爱好",
			      "变性淀粉",
			      "nba新冠军",
			      "嫌疑人x的献身",
			      "护照逾期怎么办",
			      "图书逾期",
			      "nude lipstick",
			      "buddha bowl recipe",
			      "network diagnostics",
			      "bluedart tracking",
			      "dui bu qi",
			      "跳楼价 清仓",
			      "想死你了"};
	for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
		struct kn_deid d = finish_query(near[i], NULL);
		KT_CHECK(!d.sensitive);
		if (d.sensitive)
			fprintf(stderr, "  false positive: %s\n", near[i]);
	}
}

/* Placeholders are scrubbed data, never words of the taxonomy: "<PHONE>"
 * is not a tech query and "<CARD>" not a car. */
static void test_placeholders_not_categorized(void)
{
	struct kn_deid d = finish_query("13800138000", NULL);
	KT_STREQ(d.query, "<PHONE>");
	KT_STREQ(d.query_category, "other");
	d = finish_query("4111 1111 1111 1111", NULL);
	KT_STREQ(d.query_category, "other");
	d = finish_query("手机 13800138000", NULL); /* the word itself still counts */
	KT_STREQ(d.query_category, "tech");
}

/* The term index: file order decides between categories wherever in the
 * text their terms are; terms sharing their first two bytes, one-byte
 * terms, and terms at either end of the text are all found. */
static void test_taxonomy_index(void)
{
	const char *path = "/tmp/kt_taxonomy.txt";
	const char *ov[] = {"policy.query_taxonomy=/tmp/kt_taxonomy.txt"};
	struct kn_config *c;
	struct kn_policy *p;
	char err[512];
	FILE *f = fopen(path, "w");

	KT_CHECK(f != NULL);
	if (!f)
		return;
	fputs("# test\nfirst: zebra, 象\nsecond: zebu, zeal, x, 象棋\nthird: alpha beta, z\n", f);
	fclose(f);
	if (kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", ov, 1, &c, err,
			   sizeof(err)) ||
	    kn_policy_new(c, &p, err, sizeof(err))) {
		fprintf(stderr, "taxonomy: %s\n", err);
		KT_CHECK(0);
		return;
	}
	KT_STREQ(kn_policy_categorize(p, "zeal then zebra", 15), "first");
	KT_STREQ(kn_policy_categorize(p, "zebu", 4), "second");
	KT_STREQ(kn_policy_categorize(p, "the zeal", 8), "second");
	KT_STREQ(kn_policy_categorize(p, "x", 1), "second");
	KT_STREQ(kn_policy_categorize(p, "go x now", 8), "second");
	/* single-character tokens are squeezed into one word (h.i.v is hiv) */
	KT_STREQ(kn_policy_categorize(p, "a x b", 5), "other");
	KT_STREQ(kn_policy_categorize(p, "xylophone", 9), "other"); /* short: whole word */
	KT_STREQ(kn_policy_categorize(p, "ALPHA  BETA z", 13), "third");
	KT_STREQ(kn_policy_categorize(p, "z", 1), "third");
	KT_STREQ(kn_policy_categorize(p, "象棋", strlen("象棋")), "first"); /* 象 is first's */
	KT_STREQ(kn_policy_categorize(p, "下象棋", strlen("下象棋")), "first");
	KT_STREQ(kn_policy_categorize(p, "zebr", 4), "other");
	KT_STREQ(kn_policy_categorize(p, "", 0), "other");
	kn_policy_destroy(p);
	kn_config_destroy(c);
	unlink(path);
}

static void test_scrub_and_category(void)
{
	struct kn_deid d;

	d = finish_query("北京到上海高铁 13800138000", NULL);
	KT_STREQ(d.query_category, "travel");
	KT_STREQ(d.query, "北京到上海高铁 <PHONE>");
	KT_CHECK(!d.emit_query); /* text stays internal unless configured */
	d = finish_query("iphone 16 价格", NULL);
	KT_STREQ(d.query_category, "shopping");
	d = finish_query("zzzz", NULL);
	KT_STREQ(d.query_category, "other");
	KT_CHECK(kn_policy_stats(pol)->scrubbed.phone >= 1);
}

/* A lexicon that names nothing, or a path that is not a file, would turn a
 * rule of the policy off without a word: refused. */
static void test_empty_lexicon_refused(void)
{
	const char *path = "/tmp/kt_empty_lexicon.txt";
	const char *cases[][2] = {
		{"policy.sensitive_terms=/tmp/kt_empty_lexicon.txt", "no 'category"},
		{"policy.query_taxonomy=/tmp/kt_empty_lexicon.txt", "no 'category"},
		{"policy.sensitive_terms=/dev/null", "not a regular file"},
		{"policy.sensitive_terms=/tmp", "not a regular file"}};
	FILE *f = fopen(path, "w");

	KT_CHECK(f != NULL);
	if (!f)
		return;
	fputs("# only a comment\n\n", f);
	fclose(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kn_config *c;
		struct kn_policy *p = NULL;
		char err[512] = "";
		const char *ov[] = {cases[i][0]};
		KT_CHECK(!kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", ov, 1, &c, err,
					 sizeof(err)));
		KT_CHECK(kn_policy_new(c, &p, err, sizeof(err)) != 0);
		KT_CHECK(strstr(err, cases[i][1]) != NULL);
		kn_policy_destroy(p);
		kn_config_destroy(c);
	}
	unlink(path);
}

int main(void)
{
	char err[1024];

	setenv("KANON_KEY_FILE", "/nonexistent", 1);
	if (kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", NULL, 0, &cfg, err,
			   sizeof(err)) ||
	    kn_policy_new(cfg, &pol, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return 1;
	}
	KT_RUN(test_consent);
	KT_RUN(test_minors_boundary);
	KT_RUN(test_utc_year);
	KT_RUN(test_minors_kept_when_allowed);
	KT_RUN(test_sensitive);
	KT_RUN(test_sensitive_spellings);
	KT_RUN(test_placeholders_not_categorized);
	KT_RUN(test_taxonomy_index);
	KT_RUN(test_scrub_and_category);
	KT_RUN(test_empty_lexicon_refused);
	kn_policy_destroy(pol);
	kn_config_destroy(cfg);
	return kt_done();
}
