#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kn_log_level cur_level = KN_LOG_INFO;

void kn_log_set_level(enum kn_log_level level)
{
	cur_level = level;
}

enum kn_log_level kn_log_get_level(void)
{
	return cur_level;
}

int kn_log_parse_level(const char *s, enum kn_log_level *out)
{
	static const struct {
		const char *name;
		enum kn_log_level level;
	} names[] = {{"error", KN_LOG_ERROR},
		     {"warn", KN_LOG_WARN},
		     {"info", KN_LOG_INFO},
		     {"debug", KN_LOG_DEBUG}};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i].name)) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

char *kn_log_tame(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* C1, as UTF-8 */
			*p = '?', *++p = '?';
	return s;
}

void kn_log(enum kn_log_level level, const char *component, const char *fmt, ...)
{
	static const char *tag[] = {[KN_LOG_ERROR] = "ERROR",
				    [KN_LOG_WARN] = "WARN",
				    [KN_LOG_INFO] = "INFO",
				    [KN_LOG_DEBUG] = "DEBUG"};
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level > cur_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf per line so concurrent librdkafka threads do not interleave. */
	char msg[1024];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kn_log_tame(msg);
	fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", ts, now.tv_nsec / 1000000, tag[level],
		component, msg);
}
