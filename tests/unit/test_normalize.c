#include <errno.h>
#include <stdbool.h>

#include "kt.h"
#include "normalize.h"

static const struct kn_norm_opts cn = {.phone_cc = "86"};
static const struct kn_norm_opts us = {.phone_cc = "1"};

static const char *norm(enum kn_id_kind k, const char *in, const struct kn_norm_opts *o)
{
	static char buf[KN_ID_MAX + 1];
	int n = kn_normalize(k, in, strlen(in), buf, o);

	if (n < 0)
		return "<invalid>";
	buf[n] = '\0';
	return buf;
}

static void test_email(void)
{
	KT_STREQ(norm(KN_ID_EMAIL, "  Alice.Smith@Example.COM \t", &cn), "alice.smith@example.com");
	KT_STREQ(norm(KN_ID_EMAIL, "bob@qq.com", &cn), "bob@qq.com");
	KT_STREQ(norm(KN_ID_EMAIL, "no-at-sign", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_EMAIL, "a@b@c", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_EMAIL, "@example.com", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_EMAIL, "user@", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_EMAIL, "us er@example.com", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_EMAIL, "   ", &cn), "<invalid>");
	/* What mail clients and input methods wrap around one address. */
	const char *forms[] = {"mailto:Alice@Example.com",
			       "<alice@example.com>",
			       "alice@example.com.",
			       "alice\xe2\x80\x8b@example.com",
			       "\xef\xbd\x81lice\xef\xbc\xa0"
			       "example.com",
			       "\xc2\xa0"
			       "alice@example.com\xe3\x80\x80"};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		KT_STREQ(norm(KN_ID_EMAIL, forms[i], &cn), "alice@example.com");
	KT_STREQ(norm(KN_ID_EMAIL, "<mailto:Alice@example.com>.", &cn), "alice@example.com");
	KT_STREQ(norm(KN_ID_EMAIL, "mailto:alice@example.com?subject=hi", &cn),
		 "alice@example.com");
	KT_STREQ(norm(KN_ID_EMAIL, "mailto:", &cn), "<invalid>");
	/* A lead byte without its continuation bytes is not a full-width form. */
	KT_STREQ(norm(KN_ID_EMAIL, "a@b\xef\xbc\xc3.c", &cn), "a@b\xef\xbc\xc3.c");
	KT_STREQ(norm(KN_ID_EMAIL, "<>", &cn), "<invalid>");
}

static void test_phone_cn(void)
{
	/* One person, typed six ways. */
	const char *forms[] = {"13800138000",	   "+86 138 0013 8000", "+86-138-0013-8000",
			       "0086 13800138000", "8613800138000",	"(138) 0013.8000"};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		KT_STREQ(norm(KN_ID_PHONE, forms[i], &cn), "+8613800138000");
	/* Landline with trunk prefix. */
	KT_STREQ(norm(KN_ID_PHONE, "010-6552-9988", &cn), "+861065529988");
	/* The trunk prefix shown beside the country code; full-width digits. */
	KT_STREQ(norm(KN_ID_PHONE, "+86 (0)138 0013 8000", &cn), "+8613800138000");
	KT_STREQ(norm(KN_ID_PHONE, "+86 (0)10 6552 9988", &cn), "+861065529988");
	KT_STREQ(norm(KN_ID_PHONE, "0086 (0)138 0013 8000", &cn), "+8613800138000");
	/* only right after the country code */
	KT_STREQ(norm(KN_ID_PHONE, "+86 138(0)0013 8000", &cn), "+86138000138000");
	KT_STREQ(norm(KN_ID_PHONE,
		      "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x90\xef\xbc\x90\xef\xbc\x91\xef"
		      "\xbc\x93\xef\xbc\x98\xef\xbc\x90\xef\xbc\x90\xef\xbc\x90",
		      &cn),
		 "+8613800138000");
	KT_STREQ(norm(KN_ID_PHONE,
		      "\xef\xbc\x8b"
		      "86\xe3\x80\x80"
		      "138\xc2\xa0"
		      "0013-8000",
		      &cn),
		 "+8613800138000");
	/* Foreign numbers keep their own country code. */
	KT_STREQ(norm(KN_ID_PHONE, "+1 (415) 555-2671", &cn), "+14155552671");
	KT_STREQ(norm(KN_ID_PHONE, "+44 20 7946 0958", &cn), "+442079460958");
	/* Not phone numbers. */
	KT_STREQ(norm(KN_ID_PHONE, "N/A", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "138 0013 8000 x", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "138 0013 8000 ext 12a", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "+8 (0)6 13800138000", &cn), "<invalid>"); /* no code 8 */
	KT_STREQ(norm(KN_ID_PHONE, "+86 00000000000", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "0086 00000000", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "123456", &cn), "<invalid>");	    /* shorter than CN's */
	KT_STREQ(norm(KN_ID_PHONE, "010-41571259-890", &cn), "<invalid>");  /* longer */
	KT_STREQ(norm(KN_ID_PHONE, "+86 12345", &cn), "<invalid>");	    /* too short */
	KT_STREQ(norm(KN_ID_PHONE, "+8613800138000123", &cn), "<invalid>"); /* > 15 digits */
	KT_STREQ(norm(KN_ID_PHONE, "", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_PHONE, "1+3800138000", &cn), "<invalid>");
}

/* What the differential review against libphonenumber found: one number
 * written so must be the one E.164 number. */
static void test_phone_spellings(void)
{
	/* a trunk 0 written after the country code anyway */
	const char *bj[] = {"+86 010 1234 5678", "0086-010-12345678", "+86 (010) 1234 5678",
			    "010-1234-5678",	 "+86 10 1234 5678",  "+86 ( 0 ) 10 1234 5678"};
	for (size_t i = 0; i < sizeof(bj) / sizeof(bj[0]); i++)
		KT_STREQ(norm(KN_ID_PHONE, bj[i], &cn), "+861012345678");
	KT_STREQ(norm(KN_ID_PHONE, "+86 0138 0013 8000", &cn), "+8613800138000");
	KT_STREQ(norm(KN_ID_PHONE, "+44 020 7946 0958", &cn), "+442079460958");
	/* ...but Italy's numbers start with 0 */
	KT_STREQ(norm(KN_ID_PHONE, "+39 06 1234 5678", &cn), "+390612345678");
	KT_STREQ(norm(KN_ID_PHONE, "+39 (0)6 1234 5678", &cn), "+390612345678");
	/* dashes of word processors and input methods, labels, tel: URIs */
	const char *m[] = {"138–0013–8000",   /* U+2013 */
			   "138−0013−8000",   /* U+2212 */
			   "138ー0013ー8000", /* U+30FC */
			   "Tel: 138 0013 8000", "tel:+86-138-0013-8000",
			   "电话：13800138000",	 "phone 13800138000"};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		KT_STREQ(norm(KN_ID_PHONE, m[i], &cn), "+8613800138000");
	/* an extension is the desk, not the switchboard: another person */
	const char *ext[] = {"010-6552-9988 ext 12", "010 6552 9988 x12", "010-6552-9988#12",
			     "tel:+86-10-6552-9988;ext=12",
			     "010-65529988\xe8\xbd\xac"
			     "12"};
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		KT_STREQ(norm(KN_ID_PHONE, ext[i], &cn), "+861065529988;ext=12");
	KT_STREQ(norm(KN_ID_PHONE, "86 10 1234 5678", &cn), "+861012345678");
	static const struct kn_norm_opts ru = {.phone_cc = "7"};
	KT_STREQ(norm(KN_ID_PHONE, "8 495 123 45 67", &ru), "+74951234567"); /* trunk 8 */
	KT_STREQ(norm(KN_ID_PHONE, "7 495 123 45 67", &ru), "+74951234567");
	KT_CHECK(kn_phone_region_valid("86") && kn_phone_region_valid("1") &&
		 kn_phone_region_valid("852"));
	KT_CHECK(!kn_phone_region_valid("8") && !kn_phone_region_valid("999") &&
		 !kn_phone_region_valid("") && !kn_phone_region_valid("8x"));
}

static void test_phone_region(void)
{
	KT_STREQ(norm(KN_ID_PHONE, "(415) 555-2671", &us), "+14155552671");
	KT_STREQ(norm(KN_ID_PHONE, "1 415 555 2671", &us), "+14155552671");
	/* Only "+" and "00" are understood as international prefixes. */
	KT_STREQ(norm(KN_ID_PHONE, "00 86 138 0013 8000", &us), "+8613800138000");
	KT_STREQ(norm(KN_ID_PHONE, "011 86 138 0013 8000", &us), "<invalid>");
}

static void test_email_forms(void)
{
	/* IDN domains in one form, IDNA's A-labels */
	const char *idn[] = {"user@b\xc3\xbc"
			     "cher.de",
			     "user@xn--bcher-kva.de",
			     "USER@B\xc3\x9c"
			     "CHER.DE",
			     "user@bu\xcc\x88"
			     "cher.de",
			     "user@b\xc3\xbc"
			     "cher\xe3\x80\x82"
			     "de"};
	for (size_t i = 0; i < sizeof(idn) / sizeof(idn[0]); i++)
		KT_STREQ(norm(KN_ID_EMAIL, idn[i], &cn), "user@xn--bcher-kva.de");
	KT_STREQ(norm(KN_ID_EMAIL, "Zhang San <Zhang@QQ.com>", &cn), "zhang@qq.com");
	KT_STREQ(norm(KN_ID_EMAIL, "\"Zhang San\" <zhang@qq.com>", &cn), "zhang@qq.com");
	KT_STREQ(norm(KN_ID_EMAIL, "\"user\"@qq.com", &cn), "user@qq.com");
	KT_STREQ(norm(KN_ID_EMAIL, "\"a b\"@qq.com", &cn), "<invalid>"); /* a space */
}

static void test_device(void)
{
	/* wrapped, full-width: one device */
	const char *g[] = {"{6F9619FF-8B86-D011-B42D-00C04FC964FF}",
			   "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff",
			   "6f9619ff8b86d011b42d00c04fc964ff",
			   "６f9619ff-8b86-d011-b42d-00c04fc964ff"};
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
		KT_STREQ(norm(KN_ID_DEVICE, g[i], &cn), "6f9619ff8b86d011b42d00c04fc964ff");
	KT_STREQ(norm(KN_ID_DEVICE, "341452C5-4D7C-33F2-1A83-D752F35EBA75", &cn),
		 "341452c54d7c33f21a83d752f35eba75");
	KT_STREQ(norm(KN_ID_DEVICE, "341452c54d7c33f21a83d752f35eba75", &cn),
		 "341452c54d7c33f21a83d752f35eba75");
	KT_STREQ(norm(KN_ID_DEVICE, "AA:BB:CC:DD:EE:FF", &cn), "aabbccddeeff");
	KT_STREQ(norm(KN_ID_DEVICE, " - : ", &cn), "<invalid>");
}

/* The table-driven loop against the rule written out: every byte value,
 * and the length limit with separators after it. */
static void test_device_every_byte(void)
{
	char in[4], out[KN_ID_MAX], big[KN_ID_MAX + 8];

	for (int c = 0; c < 256; c++) {
		in[0] = 'a', in[1] = (char)c, in[2] = 'B';
		int n = kn_normalize(KN_ID_DEVICE, in, 3, out, &cn);
		bool sep = c == ' ' || (c >= '\t' && c <= '\r') || c == '-' || c == ':' ||
			   c == '.' || c == '_';
		char want = c >= 'A' && c <= 'Z' ? (char)(c + 32) : (char)c;
		KT_CHECK(n == (sep ? 2 : 3));
		KT_CHECK(out[0] == 'a' && out[n - 1] == 'b' && (sep || out[1] == want));
	}
	memset(big, 'x', KN_ID_MAX);
	memcpy(big + KN_ID_MAX, "-:. _--", 7);
	KT_CHECK(kn_normalize(KN_ID_DEVICE, big, KN_ID_MAX + 7, out, &cn) == KN_ID_MAX);
	big[KN_ID_MAX + 6] = 'y'; /* one byte too many */
	KT_CHECK(kn_normalize(KN_ID_DEVICE, big, KN_ID_MAX + 7, out, &cn) == -EINVAL);
}

static void test_opaque(void)
{
	KT_STREQ(norm(KN_ID_USER, "  u0001 ", &cn), "u0001");
	KT_STREQ(norm(KN_ID_USER, "U0001", &cn), "U0001"); /* case-sensitive tokens */
	KT_STREQ(norm(KN_ID_COOKIE, "ck_abc", &cn), "ck_abc");
	KT_STREQ(norm(KN_ID_USER, "", &cn), "<invalid>");
	char big[KN_ID_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	KT_STREQ(norm(KN_ID_USER, big, &cn), "<invalid>");
}

/* Placeholders for a missing identifier are no identifier: else everyone
 * without one would be one pseudonymous person. */
static void test_placeholders(void)
{
	static const char *const none[] = {"N/A",    "null",	  " null ", "NULL",	 "-",
					   "--",     "unknown",	  "None",   "undefined", "(null)",
					   "<NULL>", "Anonymous", "EMPTY",  "NaN",	 "nil",
					   "na",     "0",	  "000000"};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		KT_STREQ(norm(KN_ID_USER, none[i], &cn), "<invalid>");
		KT_STREQ(norm(KN_ID_COOKIE, none[i], &cn), "<invalid>");
		KT_STREQ(norm(KN_ID_DEVICE, none[i], &cn), "<invalid>");
	}
	/* the all-zero IDFA of a device that limits ad tracking */
	KT_STREQ(norm(KN_ID_DEVICE, "00000000-0000-0000-0000-000000000000", &cn), "<invalid>");
	/* ids that many devices report alike: every one would be one person */
	KT_STREQ(norm(KN_ID_DEVICE, "02:00:00:00:00:00", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "9774D56D682E549C", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "ffffffff-ffff-ffff-ffff-ffffffffffff", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "02:00:00:00:00:01", &cn), "020000000001");
	/* ...wrapped or typed with a sign, too */
	KT_STREQ(norm(KN_ID_DEVICE, "{00000000-0000-0000-0000-000000000000}", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "{02:00:00:00:00:00}", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "{}", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, " -1 ", &cn), "<invalid>");
	KT_STREQ(norm(KN_ID_DEVICE, "1", &cn), "1");
	/* f's are a device placeholder only: "ff" may be someone's user name */
	KT_STREQ(norm(KN_ID_USER, "ff", &cn), "ff");
	KT_STREQ(norm(KN_ID_USER, "9774d56d682e549c", &cn), "9774d56d682e549c");
	/* ids that merely contain such words or zeros are ids */
	KT_STREQ(norm(KN_ID_USER, "null_pointer", &cn), "null_pointer");
	KT_STREQ(norm(KN_ID_USER, "u000", &cn), "u000");
	KT_STREQ(norm(KN_ID_DEVICE, "00000000-0000-0000-0000-000000000001", &cn),
		 "00000000000000000000000000000001");
}

int main(void)
{
	KT_RUN(test_email);
	KT_RUN(test_phone_cn);
	KT_RUN(test_phone_spellings);
	KT_RUN(test_phone_region);
	KT_RUN(test_email_forms);
	KT_RUN(test_device);
	KT_RUN(test_device_every_byte);
	KT_RUN(test_opaque);
	KT_RUN(test_placeholders);
	return kt_done();
}
