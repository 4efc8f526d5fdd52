#include <stdlib.h>

#include "fold.h"
#include "kt.h"

static const char *fold(const char *s, unsigned flags)
{
	static char out[4096];

	kn_fold(s, strlen(s), out, sizeof(out), flags);
	return out;
}

#define SQ KN_FOLD_SQUEEZE

static void test_unicode_forms(void)
{
	KT_STREQ(fold("醫院 同性戀 憂鬱症", 0), "医院 同性恋 忧郁症"); /* traditional */
	KT_STREQ(fold("ＨＩＶ ＡＩＤＳ", 0), "hiv aids");	       /* full-width */
	KT_STREQ(fold("艾\xe2\x80\x8b滋\xe2\x80\x8d病", 0), "艾滋病"); /* zero-width */
	KT_STREQ(fold("so\xc2\xad"
		      "ft",
		      0),
		 "soft");				      /* soft hyphen */
	KT_STREQ(fold("１３８　００１３", 0), "138 0013");    /* full-width digits, U+3000 */
	KT_STREQ(fold("\xd9\xa1\xd9\xa2\xd9\xa3", 0), "123"); /* Arabic-Indic digits */
	KT_STREQ(fold("❶➌⓵⓿", 0), "1310");		      /* dingbat, double-circled */
	KT_STREQ(fold("½ ⑩", 0), "1⁄2 10"); /* not single digits: as NFKC has them */
	KT_STREQ(fold("Straße", 0), "strasse");
	KT_STREQ(fold("a\xc2\xa0"
		      "b",
		      0),
		 "a b"); /* NBSP */
	KT_STREQ(fold("Hello World", 0), "hello world");
	/* Bytes that are not UTF-8 never come out as they went in. */
	KT_STREQ(fold("ok\xff\xfe!", 0), "ok\xef\xbf\xbd\xef\xbf\xbd"
					 "!");
	KT_STREQ(fold("\xe5\x8c", 0), "\xef\xbf\xbd"); /* truncated sequence */
}

static void test_squeeze(void)
{
	KT_STREQ(fold("艾 滋 病", SQ), "艾滋病");
	KT_STREQ(fold("艾-滋·病", SQ), "艾滋病");
	KT_STREQ(fold("h.i.v", SQ), "hiv");
	KT_STREQ(fold("H I V test", SQ), "hiv test");
	KT_STREQ(fold("a i d s", SQ), "aids");
	KT_STREQ(fold("i am a boy", SQ), "i am a boy"); /* words keep their spaces */
	KT_STREQ(fold("  --hiv--  clinic!! ", SQ), "hiv clinic");
	KT_STREQ(fold("hiv检测 医院", SQ), "hiv检测医院");
	KT_STREQ(fold("北京 hiv", SQ), "北京 hiv");
	KT_STREQ(fold("", SQ), "");
	/* markup and letters written as bars separate, like punctuation */
	KT_STREQ(fold("艾<br>滋</b>病", SQ), "艾滋病");
	KT_STREQ(fold("h<br/>i<span class=\"x\">v", SQ), "hiv");
	KT_STREQ(fold("艾丨滋ー病", SQ), "艾滋病");
	KT_STREQ(fold("艾ㅡ滋丶病", SQ), "艾滋病"); /* ㅡ is U+1173 after NFKC */
	KT_STREQ(fold("艾丿滋亅病ˉ", SQ), "艾滋病");
	KT_STREQ(fold("ab<cd and ef", SQ), "ab cd and ef");		/* no tag: a '<' alone */
	KT_STREQ(fold("<gay> bar <hiv test>", SQ), "gay bar hiv test"); /* words, not tags */
	KT_STREQ(fold("<i have hiv> <a gay bar>", SQ), "i have hiv a gay bar");
	KT_STREQ(fold("艾<BR />滋<b class=x>病", SQ), "艾滋病");
}

static void test_urls(void)
{
	KT_STREQ(fold("https://xn--zbxu2mepl.com/", KN_FOLD_URL), "https://艾滋病.com/");
	KT_STREQ(fold("HTTP://X.cn/%E5%8C%BB%E9%99%A2?a=1", KN_FOLD_URL), "http://x.cn/医院?a=1");
	KT_STREQ(fold("x.cn/%E9%86%AB%E9%99%A2", KN_FOLD_URL | SQ), "x cn 医院"); /* 醫院 */
	KT_STREQ(fold("100%25 sure %zz", KN_FOLD_URL), "100% sure %zz");
	KT_STREQ(fold("xn--broken-", KN_FOLD_URL), "xn--broken-");	   /* not punycode: as is */
	KT_STREQ(fold("%25E5%258C%25BB", KN_FOLD_URL), "医");		   /* encoded twice */
	KT_STREQ(fold("%u827e%u6ECB", KN_FOLD_URL), "艾滋");		   /* %uXXXX */
	KT_STREQ(fold("%uD83D%uDE00!", KN_FOLD_URL), "\xf0\x9f\x98\x80!"); /* a pair: one */
	/* HTML character references: numeric (with or without ';'), named. */
	KT_STREQ(fold("x&#64;qq&#x2E;com &#20013&commat;&amp;", KN_FOLD_URL), "x@qq.com 中@&");
	KT_STREQ(fold("&#0; &#xD800; &#99999999; &bogus; at&t", KN_FOLD_URL),
		 "&#0; &#xd800; &#99999999; &bogus; at&t"); /* not characters: as is */
	KT_STREQ(fold("&amp;#64;", KN_FOLD_URL), "@");	    /* escaped twice */
	/* Percent-encoded bytes that are not UTF-8 are replaced, not emitted. */
	KT_STREQ(fold("a%FFb", KN_FOLD_URL), "a\xef\xbf\xbd"
					     "b");
	/* ...unless they are GB18030 (GBK), as older Chinese sites escape:
	 * a run at a time, so UTF-8 beside it is left alone. */
	KT_STREQ(fold("x.cn/%B0%AC%D7%CC%B2%A1/", KN_FOLD_URL), "x.cn/艾滋病/");
	KT_STREQ(fold("天气 %B0%AC %E5%8C%BB", KN_FOLD_URL), "天气 艾 医");
	/* GBK that is also UTF-8 (医院 is D2BD D4BA) reads as UTF-8: no
	 * byte says which it was. */
	KT_STREQ(fold("%D2%BD%D4%BA", KN_FOLD_URL), "ҽժ"); /* case-folded */
	/* ...and as GBK on the second reading, which a matcher asks for */
	KT_CHECK(kn_fold_gbk_ambiguous("x/%D2%BD%D4%BA/", 15));
	KT_STREQ(fold("x/%D2%BD%D4%BA/", KN_FOLD_URL | KN_FOLD_GBK), "x/医院/");
	KT_CHECK(!kn_fold_gbk_ambiguous("%E5%8C%BB%E9%99%A2", 18)); /* 医院 as UTF-8 */
	KT_CHECK(kn_fold_gbk_ambiguous("%D0%BC", 6));		    /* м, or GBK's 屑 */
	KT_CHECK(!kn_fold_gbk_ambiguous("%41%42 %D0%BC%E5%8C%BB",
					22)); /* no run of two-byte UTF-8 */
	KT_STREQ(fold("%E5%8C%BB%E9%99%A2", KN_FOLD_URL | KN_FOLD_GBK), "医院");
	/* UTF-8 with a byte cut off (logs cut URLs) stays UTF-8, and a Latin-1
	 * byte before an escaped '@' does not swallow it. */
	KT_STREQ(fold("/%E8%89%BE%E6%BB%8B%E7%97%85%E7", KN_FOLD_URL), "/艾滋病\xef\xbf\xbd");
	KT_STREQ(fold("jos%E9%40example.com", KN_FOLD_URL), "jos\xef\xbf\xbd@example.com");
	/* ...but inside a text GBK that starts like a UTF-8 tail is GBK (癌症) */
	KT_STREQ(fold("/tag/%B0%A9%D6%A2/x", KN_FOLD_URL), "/tag/癌症/x");
	KT_STREQ(fold("/tag/%B0%A9%D6%A2", KN_FOLD_URL), "/tag/癌症");
	KT_STREQ(fold("%C4%E3%BA%C3", KN_FOLD_URL | SQ), "你好");
}

static void test_limits(void)
{
	char big[10000], out[64];

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	KT_CHECK(kn_fold(big, strlen(big), out, sizeof(out), SQ) == sizeof(out) - 1);
	KT_CHECK(strspn(out, "a") == sizeof(out) - 1);
	/* Cut at a character boundary, never inside one. */
	for (size_t i = 0; i + 3 < sizeof(big); i += 3)
		memcpy(big + i, "医", 3);
	big[9999 - 9999 % 3] = '\0';
	size_t n = kn_fold(big, strlen(big), out, sizeof(out), 0);
	KT_CHECK(n == 63 && n % 3 == 0);
	/* NFKC growing a text (U+FDFA is 18 characters) stays in bounds. */
	char grow[4096 * 3 + 1] = "";
	for (int i = 0; i < 1365; i++)
		strcat(grow, "\xef\xb7\xba");
	char wide[8192];
	KT_CHECK(kn_fold(grow, strlen(grow), wide, sizeof(wide), 0) > 0);
}

int main(void)
{
	char err[256];

	if (kn_fold_init(err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	KT_RUN(test_unicode_forms);
	KT_RUN(test_squeeze);
	KT_RUN(test_urls);
	KT_RUN(test_limits);
	return kt_done();
}
