#include "event.h"

#include <string.h>

const struct kn_role_info kn_roles[KN_ROLE_COUNT] = {
	[KN_ROLE_ID_USER] = {"user_id", KN_VAL_STR, "account id; pseudonymized (kind user)"},
	[KN_ROLE_ID_DEVICE] = {"device_id", KN_VAL_STR,
			       "device id; lower-cased, separators removed, pseudonymized"},
	[KN_ROLE_ID_PHONE] = {"phone", KN_VAL_STR, "phone; normalized to E.164, pseudonymized"},
	[KN_ROLE_ID_EMAIL] = {"email", KN_VAL_STR, "email; trimmed, lower-cased, pseudonymized"},
	[KN_ROLE_ID_COOKIE] = {"cookie_id", KN_VAL_STR, "cookie id; pseudonymized"},
	[KN_ROLE_EVENT_ID] = {"event_id", KN_VAL_STR,
			      "required; emitted only as a keyed event_key for deduplication"},
	[KN_ROLE_TIMESTAMP] = {"timestamp", KN_VAL_LONG,
			       "required, epoch millis; emitted as a time bucket"},
	[KN_ROLE_IP] = {"ip", KN_VAL_STR, "IPv4/IPv6 text; emitted as a prefix"},
	[KN_ROLE_LAT] = {"lat", KN_VAL_DOUBLE, "latitude; emitted as a geohash cell"},
	[KN_ROLE_LON] = {"lon", KN_VAL_DOUBLE, "longitude; emitted as a geohash cell"},
	[KN_ROLE_USER_AGENT] = {"user_agent", KN_VAL_STR,
				"emitted as browser family, major version, OS family"},
	[KN_ROLE_OS] = {"os", KN_VAL_STR, "OS name and version; emitted as family + major"},
	[KN_ROLE_APP_VERSION] = {"app_version", KN_VAL_STR, "emitted as major.minor"},
	[KN_ROLE_URL] = {"url", KN_VAL_STR,
			 "emitted as the registrable domain (eTLD+1) or a class"},
	[KN_ROLE_REFERRER] = {"referrer", KN_VAL_STR,
			      "emitted as the registrable domain (eTLD+1) or a class"},
	[KN_ROLE_CLICKED_URL] = {"clicked_url", KN_VAL_STR,
				 "emitted as the registrable domain (eTLD+1) or a class"},
	[KN_ROLE_QUERY] = {"query", KN_VAL_STR,
			   "search text; emitted as a category (scrubbed only with "
			   "policy.emit_scrubbed_query)"},
	[KN_ROLE_STATUS] = {"status", KN_VAL_LONG, "HTTP status; emitted if 0..999"},
	[KN_ROLE_BYTES] = {"bytes", KN_VAL_LONG, "response size; not emitted"},
	[KN_ROLE_BIRTH_YEAR] = {"birth_year", KN_VAL_LONG, "not emitted"},
	[KN_ROLE_CONSENT_LOCATION] = {"consent_location", KN_VAL_BOOL,
				      "false: no geo cell and no IP prefix is emitted"},
	[KN_ROLE_CONSENT_ADS] = {"consent_ads", KN_VAL_BOOL, "carried as consent_ads"},
	[KN_ROLE_CONSENT_ANALYTICS] = {"consent_analytics", KN_VAL_BOOL,
				       "carried as consent_analytics"},
};

int kn_role_by_name(const char *name)
{
	for (int i = 0; i < KN_ROLE_COUNT; i++)
		if (!strcmp(kn_roles[i].name, name))
			return i;
	return -1;
}

const char *kn_id_kind_name(enum kn_id_kind kind)
{
	static const char *names[KN_ID_KINDS] = {"user", "device", "phone", "email", "cookie"};

	return (unsigned)kind < KN_ID_KINDS ? names[kind] : "?";
}

static const char *ev_names[KN_EV_TYPES] = {"device", "access", "search"};

const char *kn_event_type_name(enum kn_event_type t)
{
	return (unsigned)t < KN_EV_TYPES ? ev_names[t] : "?";
}

int kn_event_type_by_name(const char *name)
{
	for (int i = 0; i < KN_EV_TYPES; i++)
		if (!strcmp(ev_names[i], name))
			return i;
	return -1;
}
