package dev.kanon.bench.streams;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.apache.avro.Schema;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;

/**
 * B2's Kafka Streams peer: `kanon run`'s de-identification of DeviceLog
 * records (at-least-once) as a Kafka Streams application. It stops by
 * itself once --count input records were processed, closes (which flushes
 * the producer and commits), and prints one JSON line:
 * {"bench":"b2","client":"kafka-streams","records":N,"seconds":S}, S from
 * KafkaStreams.start() to close() returning.
 */
public final class Main {
    private static final String USAGE = String.join("\n",
        "usage: java -jar kanon-streams-peer.jar --input TOPIC --output TOPIC --count N [options]",
        "  --bootstrap-servers H:P   default $KANON_BROKERS or 127.0.0.1:39092",
        "  --input TOPIC             DeviceLog records, Confluent-framed Avro",
        "  --output TOPIC            DeidEvent records (schema id 100), keyed like kanon's",
        "  --dead-letter TOPIC       default OUTPUT.deadletter",
        "  --application-id ID       default kanon-streams-peer (a fresh one reads from the start)",
        "  --count N                 stop after N input records were processed and committed",
        "  --threads N               num.stream.threads (default: the number of cores)",
        "  --key-file PATH           a `kanon keygen` key file (default $KANON_KEY_FILE)",
        "  --timeout SECONDS         give up (exit 1) if N records take longer (default 3600)",
        "  --state-dir DIR           Kafka Streams' state.dir (default a temporary one)");

    /** Kafka's timestamp, or now for records without one (kanon's ref_ms). */
    public static final class KafkaOrWallclock implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            return record.timestamp() > 0 ? record.timestamp() : System.currentTimeMillis();
        }
    }

    static final class DeidProcessor implements Processor<byte[], byte[], byte[], byte[]> {
        private final KeyChain keys;
        private final Schema in, out;
        private final AtomicLong counter;
        private final long target;
        private final CountDownLatch done;
        private final LongAdder[] verdicts;
        private ProcessorContext<byte[], byte[]> ctx;
        private Deid deid;

        DeidProcessor(KeyChain keys, Schema in, Schema out, AtomicLong counter, long target,
                      CountDownLatch done, LongAdder[] verdicts) {
            this.keys = keys;
            this.in = in;
            this.out = out;
            this.counter = counter;
            this.target = target;
            this.done = done;
            this.verdicts = verdicts;
        }

        @Override
        public void init(ProcessorContext<byte[], byte[]> context) {
            ctx = context;
            deid = new Deid(new Deid.Config(), keys, in, out);
        }

        @Override
        public void process(Record<byte[], byte[]> rec) {
            long ref = rec.timestamp() > 0 ? rec.timestamp() : System.currentTimeMillis();
            switch (deid.process(rec.value(), ref)) {
            case OUT:
                ctx.forward(new Record<>(deid.outKey, deid.outValue, deid.outTimestamp, new RecordHeaders()), "deid");
                break;
            case DEAD: {
                // Like kanon's dead letters: the reason and the source in
                // headers, no payload (dead_letter.include_payload: false).
                RecordHeaders h = new RecordHeaders();
                Optional<RecordMetadata> m = ctx.recordMetadata();
                h.add("kanon.reason", deid.reason.getBytes(StandardCharsets.UTF_8));
                h.add("kanon.detail", deid.detail.getBytes(StandardCharsets.UTF_8));
                h.add("kanon.source.topic", m.map(RecordMetadata::topic).orElse("").getBytes(StandardCharsets.UTF_8));
                h.add("kanon.source.partition", m.map(x -> Integer.toString(x.partition())).orElse("-1").getBytes(StandardCharsets.UTF_8));
                h.add("kanon.source.offset", m.map(x -> Long.toString(x.offset())).orElse("-1").getBytes(StandardCharsets.UTF_8));
                if (deid.schemaId >= 0)
                    h.add("kanon.schema_id", Integer.toString(deid.schemaId).getBytes(StandardCharsets.UTF_8));
                ctx.forward(new Record<byte[], byte[]>(null, null, System.currentTimeMillis(), h), "dead");
                break;
            }
            default: // dropped by the policy: nothing is written
                break;
            }
            verdicts[deid.verdict.ordinal()].increment();
            if (counter.incrementAndGet() == target)
                done.countDown();
        }
    }

    private static Schema schema(String resource) throws IOException {
        try (InputStream s = Main.class.getResourceAsStream("/" + resource)) {
            if (s == null)
                throw new IOException(resource + " is not in the jar (build with mvn package)");
            return new Schema.Parser().parse(s);
        }
    }

    private static void die(String msg) {
        System.err.println("kanon-streams-peer: " + msg);
        System.exit(2);
    }

    private static void deleteTree(Path p) {
        try (var walk = Files.walk(p)) {
            walk.sorted((a, b) -> b.compareTo(a)).forEach(x -> x.toFile().delete());
        } catch (IOException e) {
            // best effort
        }
    }

    public static void main(String[] args) throws Exception {
        // Kafka's own logs: warnings and errors only, to stderr (slf4j-simple).
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        String brokers = System.getenv().getOrDefault("KANON_BROKERS", "127.0.0.1:39092");
        String input = null, output = null, deadLetter = null, appId = "kanon-streams-peer";
        String keyFile = System.getenv("KANON_KEY_FILE"), stateDir = null;
        long count = -1, timeoutS = 3600;
        int threads = Runtime.getRuntime().availableProcessors();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                System.out.println(USAGE);
                return;
            }
            if (i + 1 >= args.length)
                die("option " + a + " needs a value\n" + USAGE);
            String v = args[++i];
            switch (a) {
            case "--bootstrap-servers": brokers = v; break;
            case "--input": input = v; break;
            case "--output": output = v; break;
            case "--dead-letter": deadLetter = v; break;
            case "--application-id": appId = v; break;
            case "--count": count = Long.parseLong(v); break;
            case "--threads": threads = Integer.parseInt(v); break;
            case "--key-file": keyFile = v; break;
            case "--timeout": timeoutS = Long.parseLong(v); break;
            case "--state-dir": stateDir = v; break;
            default: die("unknown option " + a + "\n" + USAGE);
            }
        }
        if (input == null || output == null || count <= 0 || threads < 1)
            die("--input, --output and --count N > 0 are required\n" + USAGE);
        if (keyFile == null)
            die("no key file: --key-file or KANON_KEY_FILE");
        if (deadLetter == null)
            deadLetter = output + ".deadletter";

        KeyChain keys = KeyChain.load(Paths.get(keyFile));
        Schema deviceLog = schema("DeviceLog.avsc"), deidEvent = schema("DeidEvent.avsc");
        Path state = stateDir != null ? Paths.get(stateDir) : Files.createTempDirectory("kanon-streams-peer");

        // The output topics with the broker's defaults, before the clock
        // starts (kanon's are auto-created by its producer).
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        try (Admin admin = Admin.create(ap)) {
            Set<String> have = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<NewTopic> want = new ArrayList<>();
            for (String t : List.of(output, deadLetter))
                if (!have.contains(t))
                    want.add(new NewTopic(t, Optional.empty(), Optional.empty()));
            if (!want.isEmpty()) {
                try {
                    admin.createTopics(want).all().get(30, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException))
                        throw e;
                }
            }
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        p.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, KafkaOrWallclock.class);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);       // kanon: run.commit_interval 1s
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);  // no state stores
        // kanon's consumer (its client defaults, run.prefetch_memory_mb
        // 128, run.batch_size 2000, the example's fetch.max.bytes).
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_BYTES_CONFIG), 52428800);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG), 8 << 20);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 2000);
        // kanon's at-least-once producer: idempotent (acks=all), lz4,
        // linger 20 ms, batch.size 1000000.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), "all");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 20);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1000000);

        AtomicLong counter = new AtomicLong();
        LongAdder[] verdicts = {new LongAdder(), new LongAdder(), new LongAdder()};
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Throwable> failed = new AtomicReference<>();
        final long target = count;
        Topology topo = new Topology();
        topo.addSource("in", input);
        topo.addProcessor("deidentify",
            () -> new DeidProcessor(keys, deviceLog, deidEvent, counter, target, done, verdicts), "in");
        topo.addSink("deid", output, "deidentify");
        topo.addSink("dead", deadLetter, "deidentify");

        KafkaStreams streams = new KafkaStreams(topo, p);
        streams.setUncaughtExceptionHandler(e -> {
            failed.compareAndSet(null, e);
            done.countDown();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long t0 = System.nanoTime();
        streams.start();
        boolean reached = done.await(timeoutS, TimeUnit.SECONDS);
        boolean closed = streams.close(Duration.ofSeconds(120)); // commits what was processed
        double seconds = (System.nanoTime() - t0) / 1e9;
        if (stateDir == null)
            deleteTree(state);
        if (failed.get() != null) {
            System.err.println("kanon-streams-peer: a stream thread failed: " + failed.get());
            System.exit(1);
        }
        if (!reached || !closed) {
            System.err.printf("kanon-streams-peer: %s after %.1f s (%d of %d records processed)%n",
                reached ? "close() timed out" : "gave up waiting", seconds, counter.get(), count);
            System.exit(1);
        }
        System.out.printf(Locale.ROOT,
            "{\"bench\":\"b2\",\"client\":\"kafka-streams\",\"records\":%d,\"seconds\":%.3f,"
                + "\"threads\":%d,\"deid\":%d,\"dropped\":%d,\"dead_letter\":%d}%n",
            counter.get(), seconds, threads, verdicts[Deid.Verdict.OUT.ordinal()].sum(),
            verdicts[Deid.Verdict.DROPPED.ordinal()].sum(), verdicts[Deid.Verdict.DEAD.ordinal()].sum());
        System.exit(0);
    }
}
