package dev.kanon.bench.streams;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.util.Utf8;

/**
 * One DeviceLog record through kanon's pipeline (pipeline.c), with
 * the example configuration's settings (deploy/kanon.example.yaml):
 * unframe, decode (Avro GenericDatumReader), validate, admit (consent,
 * minors), pseudonymize (normalize, SipHash-2-4-128 under kanon's key chain),
 * generalize, the policy's location rule, encode (GenericDatumWriter),
 * frame. Not thread-safe: one per processor (task).
 */
final class Deid {
    /** Settings of deploy/kanon.example.yaml, as bench/run.sh's config has them. */
    static final class Config {
        int deviceSchemaId = 1;            // schemas[type: device].id
        int accessSchemaId = 2, searchSchemaId = 3;
        int deidSchemaId = 100;            // topics.deid_schema_id
        long epochMs = 86_400_000L;        // keys.epoch: 1d
        String phoneRegion = "86";         // pseudonymize.phone_region
        int geohashPrecision = 5;          // generalize.*
        int ipv4Prefix = 24, ipv6Prefix = 48;
        long timeBucketMs = 3_600_000L;
        long tsMinMs = 946_684_800_000L;   // validate.ts_min: 2000-01-01
        long tsMaxFutureMs = 86_400_000L;  // validate.ts_max_future: 1d
        int maxFieldBytes = 4096;          // validate.max_field_bytes
        int minorAge = 18;                 // policy defaults
        boolean missingConsentAllows = false, adsOptoutInDeid = false;
    }

    enum Verdict { OUT, DROPPED, DEAD }

    // Results of the last process() call.
    Verdict verdict;
    String reason, detail; // DEAD: dead-letter reason and detail; DROPPED: drop reason
    int schemaId;          // DEAD: the framed schema id, or -1
    byte[] outKey;         // OUT: the first pseudonym (user, device, cookie, phone, email) or null
    byte[] outValue;       // OUT: framed DeidEvent
    long outTimestamp;     // OUT: the time bucket

    private final Config c;
    private final KeyChain chain;
    private final byte[] phoneCc;
    private final int nsnMax;
    private final GenericDatumReader<GenericRecord> reader;
    private final GenericDatumWriter<GenericRecord> writer;
    private final GenericData.Record out;
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream(512);
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;
    private GenericRecord in;
    private final Generalize.UaCache uaCache = new Generalize.UaCache();
    private long cachedEpoch = Long.MIN_VALUE;
    private long[] cachedKeys;
    private final byte[] canon = new byte[Normalize.ID_MAX + 16];
    private final byte[] mac = new byte[16];

    // DeviceLog field positions
    private final int fEventId, fTs, fUser, fPhone, fEmail, fDevice, fIp, fUa, fOs, fApp, fLat, fLon,
            fConsent, fBirthYear, fLocation, fAds, fAnalytics;
    // DeidEvent field positions
    private final int oType, oEventKey, oBucket, oBucketMs, oEpoch, oUser, oDevice, oPhone, oEmail,
            oCookie, oGeo, oIp, oBrowser, oBrowserMajor, oOs, oOsMajor, oApp, oUrl, oRef, oStatus,
            oAds, oAnalytics, oCategory, oQuery;

    Deid(Config c, KeyChain chain, Schema deviceLog, Schema deidEvent) {
        this.c = c;
        this.chain = chain;
        this.phoneCc = c.phoneRegion.getBytes(StandardCharsets.US_ASCII);
        this.nsnMax = Normalize.nsnMax(c.phoneRegion);
        this.reader = new GenericDatumReader<>(deviceLog);
        this.writer = new GenericDatumWriter<>(deidEvent);
        this.out = new GenericData.Record(deidEvent);
        fEventId = pos(deviceLog, "event_id");
        fTs = pos(deviceLog, "ts");
        fUser = pos(deviceLog, "user_id");
        fPhone = pos(deviceLog, "phone");
        fEmail = pos(deviceLog, "email");
        fDevice = pos(deviceLog, "device_id");
        fIp = pos(deviceLog, "ip");
        fUa = pos(deviceLog, "user_agent");
        fOs = pos(deviceLog, "os");
        fApp = pos(deviceLog, "app_version");
        fLat = pos(deviceLog, "lat");
        fLon = pos(deviceLog, "lon");
        fConsent = pos(deviceLog, "consent");
        fBirthYear = pos(deviceLog, "birth_year");
        Schema consent = deviceLog.getField("consent").schema();
        fLocation = pos(consent, "location");
        fAds = pos(consent, "ads_personalization");
        fAnalytics = pos(consent, "analytics");
        oType = pos(deidEvent, "event_type");
        oEventKey = pos(deidEvent, "event_key");
        oBucket = pos(deidEvent, "time_bucket");
        oBucketMs = pos(deidEvent, "bucket_ms");
        oEpoch = pos(deidEvent, "key_epoch");
        oUser = pos(deidEvent, "user_pid");
        oDevice = pos(deidEvent, "device_pid");
        oPhone = pos(deidEvent, "phone_pid");
        oEmail = pos(deidEvent, "email_pid");
        oCookie = pos(deidEvent, "cookie_pid");
        oGeo = pos(deidEvent, "geo_cell");
        oIp = pos(deidEvent, "ip_prefix");
        oBrowser = pos(deidEvent, "ua_browser");
        oBrowserMajor = pos(deidEvent, "ua_browser_major");
        oOs = pos(deidEvent, "os_family");
        oOsMajor = pos(deidEvent, "os_major");
        oApp = pos(deidEvent, "app_version");
        oUrl = pos(deidEvent, "url_domain");
        oRef = pos(deidEvent, "referrer_domain");
        oStatus = pos(deidEvent, "http_status");
        oAds = pos(deidEvent, "consent_ads");
        oAnalytics = pos(deidEvent, "consent_analytics");
        oCategory = pos(deidEvent, "query_category");
        oQuery = pos(deidEvent, "query");
    }

    private static int pos(Schema s, String field) {
        Schema.Field f = s.getField(field);
        if (f == null)
            throw new IllegalArgumentException(s.getFullName() + " has no field " + field);
        return f.pos();
    }

    private Verdict dead(String why, String what) {
        reason = why;
        detail = what;
        return verdict = Verdict.DEAD;
    }

    private Verdict drop(String why) {
        reason = why;
        detail = null;
        return verdict = Verdict.DROPPED;
    }

    /** Civil year of a UTC millisecond timestamp (validate.c's year_of). */
    static long yearOf(long ms) {
        long z = (ms >= 0 ? ms : ms - 86399999) / 86400000 + 719468;
        long era = (z >= 0 ? z : z - 146096) / 146097;
        long doe = z - era * 146097;
        long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        long mp = (5 * doy + 2) / 153;
        return yoe + era * 400 + (mp >= 10 ? 1 : 0);
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static String hex(byte[] b) {
        char[] s = new char[32];
        for (int i = 0; i < 16; i++) {
            s[2 * i] = HEX[(b[i] >> 4) & 15];
            s[2 * i + 1] = HEX[b[i] & 15];
        }
        return new String(s);
    }

    private static Utf8 str(GenericRecord r, int f) {
        return (Utf8) r.get(f);
    }

    private static boolean tooLong(Utf8 s, int max) {
        return s != null && s.getByteLength() > max;
    }

    /** The record's verdict; for OUT, outKey/outValue/outTimestamp. refMs: the Kafka timestamp (or now). */
    Verdict process(byte[] value, long refMs) {
        outKey = null;
        outValue = null;
        schemaId = -1;
        // ---- unframe, decode, validate ----
        if (value == null || value.length == 0)
            return dead("empty_value", "value");
        if (value.length < 5 || value[0] != 0)
            return dead("bad_framing", value.length < 5 ? "too short" : "magic byte");
        schemaId = (value[1] & 0xff) << 24 | (value[2] & 0xff) << 16 | (value[3] & 0xff) << 8 | (value[4] & 0xff);
        if (schemaId != c.deviceSchemaId) {
            if (schemaId == c.accessSchemaId)
                return dead("wrong_schema_for_topic", "access");
            if (schemaId == c.searchSchemaId)
                return dead("wrong_schema_for_topic", "search");
            return dead("unknown_schema", "schema id");
        }
        try {
            decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
            in = reader.read(in, decoder);
            if (!decoder.isEnd())
                return dead("decode_error", "trailing bytes");
        } catch (IOException | RuntimeException e) {
            in = null; // a half-read record is not reused
            // kanon's decoder says "truncated" for a datum that ends early
            return dead("decode_error", e instanceof java.io.EOFException ? "truncated" : e.getClass().getSimpleName());
        }
        GenericRecord r = in;
        Utf8 eventId = str(r, fEventId), user = str(r, fUser), phone = str(r, fPhone), email = str(r, fEmail),
                device = str(r, fDevice), ip = str(r, fIp), ua = str(r, fUa), os = str(r, fOs),
                app = str(r, fApp);
        long ts = (Long) r.get(fTs);
        Double lat = (Double) r.get(fLat), lon = (Double) r.get(fLon);
        Integer birthYear = (Integer) r.get(fBirthYear);
        GenericRecord consent = (GenericRecord) r.get(fConsent);
        boolean location = (Boolean) consent.get(fLocation), ads = (Boolean) consent.get(fAds),
                analytics = (Boolean) consent.get(fAnalytics);

        if (eventId.getByteLength() == 0)
            return dead("missing_field", "event_id");
        int max = c.maxFieldBytes; // in kanon's role order
        if (tooLong(user, max)) return dead("field_too_long", "user_id");
        if (tooLong(device, max)) return dead("field_too_long", "device_id");
        if (tooLong(phone, max)) return dead("field_too_long", "phone");
        if (tooLong(email, max)) return dead("field_too_long", "email");
        if (tooLong(eventId, max)) return dead("field_too_long", "event_id");
        if (tooLong(ip, max)) return dead("field_too_long", "ip");
        if (tooLong(ua, max)) return dead("field_too_long", "user_agent");
        if (tooLong(os, max)) return dead("field_too_long", "os");
        if (tooLong(app, max)) return dead("field_too_long", "app_version");
        if (ts < c.tsMinMs || ts > refMs + c.tsMaxFutureMs)
            return dead("out_of_range", "timestamp");
        if (lat != null && !(Double.isFinite(lat) && Math.abs(lat) <= 90))
            return dead("out_of_range", "lat");
        if (lon != null && !(Double.isFinite(lon) && Math.abs(lon) <= 180))
            return dead("out_of_range", "lon");
        long year = yearOf(ts);
        if (birthYear != null && (birthYear < 1900 || birthYear > year))
            return dead("out_of_range", "birth_year");

        // ---- admit: consent, minors ----
        if (!analytics)
            return drop("no_analytics_consent");
        if (!c.adsOptoutInDeid && !ads)
            return drop("no_ads_consent");
        boolean minor = birthYear != null && year - birthYear <= c.minorAge; // unknown age: not a minor
        if (minor) // policy.minors_in_deid: false
            return drop("minor");

        // ---- pseudonymize ----
        long epoch = c.epochMs > 0 && ts > 0 ? ts / c.epochMs : 0;
        if (epoch != cachedEpoch) {
            cachedKeys = chain.keys(epoch);
            cachedEpoch = epoch;
        }
        long[] k = cachedKeys;
        if (k == null)
            return drop("key_retired");
        int d = KeyChain.DOMAIN_EVENT;
        SipHash.hash128(k[2 * d], k[2 * d + 1], eventId.getBytes(), 0, eventId.getByteLength(), mac);
        String eventKey = hex(mac);
        String userPid = pid(Normalize.USER, user, k), devicePid = pid(Normalize.DEVICE, device, k),
                phonePid = pid(Normalize.PHONE, phone, k), emailPid = pid(Normalize.EMAIL, email, k);

        // ---- generalize ----
        long bucket = Generalize.timeBucket(ts, c.timeBucketMs);
        String geo = null;
        if (lat != null && lon != null && location)
            geo = Generalize.geohash(lat, lon, c.geohashPrecision);
        String prefix = Generalize.ipPrefix(ip.getBytes(), ip.getByteLength(), c.ipv4Prefix, c.ipv6Prefix);
        if (prefix == null)
            return dead("invalid_ip", "ip");
        Generalize.Agent agent = uaCache.parse(ua.getBytes(), ua.getByteLength());
        // An explicit OS field is better evidence than the user agent's claim.
        Generalize.Agent osField = new Generalize.Agent();
        Generalize.parseOs(os.getBytes(), os.getByteLength(), osField);
        String appVersion = Generalize.appVersion(app.getBytes(), app.getByteLength());
        // ---- policy: no location consent, no geo cell and no IP prefix ----
        if (!location) {
            geo = null;
            prefix = null;
        }

        // ---- encode ----
        out.put(oType, "device");
        out.put(oEventKey, eventKey);
        out.put(oBucket, bucket);
        out.put(oBucketMs, c.timeBucketMs);
        out.put(oEpoch, epoch);
        out.put(oUser, userPid);
        out.put(oDevice, devicePid);
        out.put(oPhone, phonePid);
        out.put(oEmail, emailPid);
        out.put(oCookie, null); // DeviceLog has no cookie
        out.put(oGeo, geo);
        out.put(oIp, prefix);
        out.put(oBrowser, agent.browser);
        out.put(oBrowserMajor, agent.browserMajor < 0 ? null : agent.browserMajor);
        out.put(oOs, osField.os);
        out.put(oOsMajor, osField.osMajor < 0 ? null : osField.osMajor);
        out.put(oApp, appVersion);
        out.put(oUrl, null);
        out.put(oRef, null);
        out.put(oStatus, null);
        out.put(oAds, ads);
        out.put(oAnalytics, analytics);
        out.put(oCategory, null);
        out.put(oQuery, null);
        buf.reset();
        buf.write(0); // Confluent framing: magic byte, schema id (big-endian)
        buf.write(c.deidSchemaId >>> 24);
        buf.write(c.deidSchemaId >>> 16);
        buf.write(c.deidSchemaId >>> 8);
        buf.write(c.deidSchemaId);
        try {
            encoder = EncoderFactory.get().binaryEncoder(buf, encoder);
            writer.write(out, encoder);
            encoder.flush();
        } catch (IOException e) {
            throw new IllegalStateException("encoding DeidEvent", e);
        }
        outValue = buf.toByteArray();
        outTimestamp = bucket;
        String key = userPid != null ? userPid : devicePid != null ? devicePid : phonePid != null ? phonePid : emailPid;
        outKey = key == null ? null : key.getBytes(StandardCharsets.US_ASCII);
        return verdict = Verdict.OUT;
    }

    /** The pseudonym of one identifier, or null when absent or not valid. */
    private String pid(int kind, Utf8 v, long[] k) {
        if (v == null)
            return null;
        int n = Normalize.normalize(kind, v.getBytes(), v.getByteLength(), canon, phoneCc, nsnMax);
        if (n < 0)
            return null;
        SipHash.hash128(k[2 * kind], k[2 * kind + 1], canon, 0, n, mac);
        return hex(mac);
    }
}
