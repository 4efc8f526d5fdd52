/* log: the single place kanon writes diagnostics (stderr, one line each).
 *
 * Library code (every module but main/run/cli) never prints: it returns an
 * error and fills the caller's errstr. Only the front ends and librdkafka's
 * log callback (routed here) log. Messages never contain key material. */
#ifndef KN_LOG_H
#define KN_LOG_H

enum kn_log_level {
	KN_LOG_ERROR = 3,
	KN_LOG_WARN = 4,
	KN_LOG_INFO = 6,
	KN_LOG_DEBUG = 7
};

void kn_log_set_level(enum kn_log_level level);
enum kn_log_level kn_log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0 or -EINVAL. */
int kn_log_parse_level(const char *s, enum kn_log_level *out);
void kn_log(enum kn_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Replaces every control character of s (bytes below 0x20 and 0x7f, and
 * C1 written as UTF-8, C2 80-9F, which terminals also obey) with '?', in
 * place: for text from outside (a file's header, a registry's answer, a
 * library's message quoting either) before it goes into an error or a log
 * line, so that it can neither forge a line nor drive a terminal. kn_log
 * does it to every message as well. Returns s. */
char *kn_log_tame(char *s);

#define kn_err(comp, ...)  kn_log(KN_LOG_ERROR, comp, __VA_ARGS__)
#define kn_warn(comp, ...) kn_log(KN_LOG_WARN, comp, __VA_ARGS__)
#define kn_info(comp, ...) kn_log(KN_LOG_INFO, comp, __VA_ARGS__)
#define kn_dbg(comp, ...)  kn_log(KN_LOG_DEBUG, comp, __VA_ARGS__)

#endif
