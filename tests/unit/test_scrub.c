#include "kt.h"
#include "scrub.h"

static const char *scrub(const char *q)
{
	static char out[KN_SCRUB_MAX];

	kn_scrub_query(q, strlen(q), out, NULL);
	return out;
}

static void test_emails_and_urls(void)
{
	KT_STREQ(scrub("contact zhang.wei@qq.com please"), "contact <EMAIL> please");
	KT_STREQ(scrub("邮箱 li_na+x@mail.example.cn 谢谢"), "邮箱 <EMAIL> 谢谢");
	KT_STREQ(scrub("user@localhost"), "user@localhost"); /* no dot-TLD: not an address */
	KT_STREQ(scrub("@weibo handle"), "@weibo handle");
	KT_STREQ(scrub("see https://shop.example.com/item?id=42&uid=77 now"), "see <URL> now");
	KT_STREQ(scrub("www.example.com/a?b=c"), "<URL>");
	KT_STREQ(scrub("https://example.com/about"), "https://example.com/about"); /* no query */
}

static void test_ip(void)
{
	KT_STREQ(scrub("my ip 203.0.113.77."), "my ip <IP>.");
	KT_STREQ(scrub("v6 2001:db8::8a2e:370:7334 ok"), "v6 <IP> ok");
	KT_STREQ(scrub("version 1.2.3.4.5"), "version 1.2.3.4.5"); /* not an address */
	KT_STREQ(scrub("999.1.1.1"), "999.1.1.1");
}

static void test_cn_id(void)
{
	/* GB 11643 example number, valid check digit X. */
	KT_CHECK(kn_cn_id_ok("11010519491231002X"));
	KT_STREQ(scrub("身份证11010519491231002X"), "身份证<CN_ID>");
	KT_STREQ(scrub("id 11010519491231002x"), "id <CN_ID>");
	/* Wrong check character: not an ID (still a long number). */
	KT_CHECK(!kn_cn_id_ok("110105194912310021"));
	KT_STREQ(scrub("110105194912310021"), "<NUM>");
	KT_STREQ(scrub("11010519491231002Y"), "<NUM>Y");
}

static void test_cards(void)
{
	KT_CHECK(kn_luhn_ok("4111111111111111", 16));
	KT_STREQ(scrub("card 4111111111111111"), "card <CARD>");
	KT_STREQ(scrub("卡号 4111 1111 1111 1111 你好"), "卡号 <CARD> 你好");
	KT_STREQ(scrub("4111-1111-1111-1111"), "<CARD>");
	/* 16 digits failing Luhn: a long number, not a card. */
	KT_CHECK(!kn_luhn_ok("4111111111111112", 16));
	KT_STREQ(scrub("4111111111111112"), "<NUM>");
}

static void test_phones(void)
{
	KT_STREQ(scrub("电话13800138000"), "电话<PHONE>");
	KT_STREQ(scrub("call 138 0013 8000"), "call <PHONE>");
	KT_STREQ(scrub("call 138-0013-8000 now"), "call <PHONE> now");
	KT_STREQ(scrub("+86 138 0013 8000"), "<PHONE>");
	KT_STREQ(scrub("+8613800138000"), "<PHONE>");
	KT_STREQ(scrub("008613800138000"), "<PHONE>");
	KT_STREQ(scrub("+44 20 7946 0958"), "<PHONE>");
	KT_STREQ(scrub("QQ123456789"), "QQ<NUM>"); /* glued to letters: still caught */
	/* Near misses: 11 digits starting 12 are not a mobile (a long number). */
	KT_STREQ(scrub("12800138000"), "<NUM>");
	KT_STREQ(scrub("room 1380"), "room 1380");
}

static void test_numbers_and_dates(void)
{
	KT_STREQ(scrub("order 12345678901234567890123456789012345 x"), "order <NUM> x");
	KT_STREQ(scrub("ticket 9876543"), "ticket <NUM>");
	KT_STREQ(scrub("航班 20261129 北京"), "航班 20261129 北京"); /* a date, not personal */
	KT_STREQ(scrub("20261399"), "<NUM>");			     /* not a date */
	KT_STREQ(scrub("2026-11-29 天气"), "2026-11-29 天气");
	KT_STREQ(scrub("iphone 16 价格"), "iphone 16 价格");
	KT_STREQ(scrub("h264 mp4"), "h264 mp4");
}

static void test_counts_and_truncation(void)
{
	struct kn_scrub_counts c;
	char out[KN_SCRUB_MAX], big[3000];
	const char *q = "a@b.com 13800138000 4111111111111111";

	kn_scrub_query(q, strlen(q), out, &c);
	KT_CHECK(c.email == 1 && c.phone == 1 && c.card == 1 && c.num == 0);
	/* A query longer than the output is cut at a character boundary. */
	for (size_t i = 0; i + 3 <= sizeof(big) - 1; i += 3)
		memcpy(big + i, "名", 3);
	big[2997] = '\0';
	size_t n = kn_scrub_query(big, strlen(big), out, NULL);
	KT_CHECK(n < KN_SCRUB_MAX && n % 3 == 0 && strlen(out) == n);
}

int main(void)
{
	KT_RUN(test_emails_and_urls);
	KT_RUN(test_ip);
	KT_RUN(test_cn_id);
	KT_RUN(test_cards);
	KT_RUN(test_phones);
	KT_RUN(test_numbers_and_dates);
	KT_RUN(test_counts_and_truncation);
	return kt_done();
}
