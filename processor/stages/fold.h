/* fold: free text into the one form every matcher compares.
 *
 * The sensitive lexicon, the query taxonomy, the search-text scrubber and
 * the URL checks never look at text as it was typed, only at its folded
 * form, so that a term matches in any spelling:
 *   - Unicode NFKC with case folding (ICU's NFKC_Casefold): full-width
 *     Latin and digits become ASCII, compatibility forms are unified, case
 *     is folded (ß -> ss) and default-ignorable code points (zero-width
 *     spaces and joiners, soft hyphens, BOMs) vanish;
 *   - every decimal digit of any script becomes its ASCII digit;
 *   - traditional Chinese becomes simplified, character by character (a
 *     table built once from ICU's Traditional-Simplified transliterator);
 *   - bytes that are not UTF-8 become U+FFFD, so the result is always valid
 *     UTF-8;
 *   - KN_FOLD_URL first decodes %XX escapes and HTML character references
 *     (&#64; &#x40; &commat;), a run of escapes that is not UTF-8 but is
 *     GB18030 as that, and turns punycode labels (xn--...) into Unicode;
 *   - KN_FOLD_SQUEEZE then squeezes separators (anything that is not a
 *     letter, digit or mark; also inline HTML tags, "<br>", and the letters
 *     people write as a bar or dash, "丨", "ー"): dropped between two CJK characters
 *     ("艾 滋 病", "艾<br>滋丨病") and between two single-character tokens
 *     ("h.i.v", "a i d s"), one space everywhere else, none at either end.
 * Plain ASCII input takes a fast path (lower-casing only, then the
 * squeeze). Pure after kn_fold_init: no allocation, thread-safe. */
#ifndef KN_FOLD_H
#define KN_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#define KN_FOLD_URL	1u
#define KN_FOLD_SQUEEZE 2u
#define KN_FOLD_GBK	4u /* with KN_FOLD_URL: the second reading of a GBK-ambiguous text */

#define KN_FOLD_IN_MAX 4096 /* longer input is folded up to here */

/* Loads ICU's normalizer and builds the Han table, once per process (later
 * calls return at once). Returns 0, or -EIO with errstr set when ICU's data
 * is missing. */
int kn_fold_init(char *errstr, size_t errstr_size);

/* Folds in[0..len) into out (cap bytes, NUL-terminated, cut at a character
 * boundary). Returns the length written. kn_fold_init must have succeeded. */
size_t kn_fold(const char *in, size_t len, char *out, size_t cap, unsigned flags);

/* Whether in[0..len) holds a run of %XX escapes that reads two ways: as
 * UTF-8 of two-byte characters (Latin, Cyrillic, ...) and as GB18030 of Han
 * only (%D2%BD%D4%BA: "ҽԺ", or GBK's 医院). KN_FOLD_URL reads such a run as
 * UTF-8; KN_FOLD_URL | KN_FOLD_GBK as GB18030: a matcher that must not miss
 * a term folds it both ways. */
bool kn_fold_gbk_ambiguous(const char *in, size_t len);

/* True for code points of the CJK scripts (Han, Hiragana, Katakana,
 * Hangul): their text has no spaces, so matchers treat them apart. */
bool kn_fold_is_cjk(int cp);

/* True for the Chinese characters that stand for a digit (after folding:
 * simplified), the spoken way to write a number that no digit pattern
 * sees: 一三八..., 幺二三..., 壹贰叁..., 洞拐勾 (radio-style 0, 7, 9). */
bool kn_fold_is_numeral(int cp);

/* The value of hex digit c, or -1: %XX escapes are read in fold.c and in
 * the host finder alike. */
static inline int kn_hexval(char c)
{
	return c >= '0' && c <= '9'			? c - '0'
	       : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
							: -1;
}

/* True for the letters people write between characters as a dash or a bar
 * (丨 丶 丿 亅 ー ㄧ ㅡ ˉ): separators to the squeeze and to the scrubber's
 * digit groups alike. Terms are squeezed the same way, so a term that holds
 * one (a katakana word with ー) still matches itself. */
static inline bool kn_fold_is_filler(int c)
{
	return c == 0x4E28 /* 丨 */ || c == 0x4E36 /* 丶 */ || c == 0x4E3F /* 丿 */ ||
	       c == 0x4E85 /* 亅 */ || c == 0x30FC /* ー */ || c == 0x3127 /* ㄧ */ ||
	       c == 0x3161 /* ㅡ */ || c == 0x1173 /* ㅡ after NFKC */ || c == 0x02C9 /* ˉ */;
}

#endif
