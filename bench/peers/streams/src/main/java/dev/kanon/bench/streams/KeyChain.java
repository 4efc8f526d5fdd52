package dev.kanon.bench.streams;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.bouncycastle.crypto.digests.Blake2bDigest;

/**
 * kanon's key chain (keys.c), read from a `kanon keygen` key file:
 * K_{e+1} = BLAKE2b-256(key = K_e, "kanon-ratchet"); the per-kind key of
 * epoch e is libsodium's crypto_kdf_derive_from_key(K_e, subkey id e,
 * context = the kind's 8-byte name), and its first 16 bytes are the SipHash
 * key. So the same key file gives kanon's pseudonyms exactly. Key material is
 * never printed. Shared by the stream threads: derive() is synchronized, and
 * each processor keeps the keys of the epochs it saw.
 */
final class KeyChain {
    static final int DOMAIN_EVENT = 5;
    static final int DOMAINS = 8;
    private static final String[] KDF_CTX = {
        "kn_user_", "kn_devic", "kn_phone", "kn_email", "kn_cooki", "kn_event", "kn_linkd", "kn_erase"};
    private static final byte[] RATCHET = "kanon-ratchet".getBytes(StandardCharsets.US_ASCII);

    private final long base;
    private final byte[] baseKey;
    private long cursor;
    private byte[] cursorKey;
    /** epoch -> per domain {k0, k1} */
    private final Map<Long, long[]> derived = new HashMap<>();

    private KeyChain(long base, byte[] key) {
        this.base = base;
        this.baseKey = key;
        this.cursor = base;
        this.cursorKey = key.clone();
    }

    static KeyChain load(Path file) throws IOException {
        long base = -1;
        byte[] key = null;
        for (String line : Files.readAllLines(file, StandardCharsets.US_ASCII)) {
            String[] f = line.trim().split(" ");
            if (f.length == 3 && f[0].equals("kanon-chain-v1")) {
                base = Long.parseLong(f[1]);
                key = unhex(f[2]);
            }
        }
        if (key == null || key.length != 32 || base < 0)
            throw new IOException("key file " + file + ": no valid 'kanon-chain-v1' line (not written by kanon keygen?)");
        return new KeyChain(base, key);
    }

    private static byte[] unhex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++)
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return b;
    }

    private static byte[] blake2b(byte[] key, int outLen, byte[] salt, byte[] personal, byte[] in) {
        Blake2bDigest d = new Blake2bDigest(key, outLen, salt, personal);
        d.update(in, 0, in.length);
        byte[] out = new byte[outLen];
        d.doFinal(out, 0);
        return out;
    }

    private byte[] chainKey(long epoch) {
        if (epoch < cursor) { // an older epoch: walk again from the base
            cursorKey = baseKey.clone();
            cursor = base;
        }
        for (; cursor < epoch; cursor++)
            cursorKey = blake2b(cursorKey, 32, null, null, RATCHET);
        return cursorKey;
    }

    /**
     * The SipHash keys of every domain of an epoch, {k0, k1} per domain at
     * [2 * domain], or null when the epoch is before the chain's first
     * (retired: kanon drops such events).
     */
    synchronized long[] keys(long epoch) {
        if (epoch < base)
            return null;
        long[] k = derived.get(epoch);
        if (k != null)
            return k;
        byte[] ek = chainKey(epoch);
        k = new long[2 * DOMAINS];
        byte[] salt = new byte[16];
        for (int i = 0; i < 8; i++)
            salt[i] = (byte) (epoch >>> (8 * i));
        for (int d = 0; d < DOMAINS; d++) {
            byte[] personal = Arrays.copyOf(KDF_CTX[d].getBytes(StandardCharsets.US_ASCII), 16);
            byte[] sub = blake2b(ek, 32, salt, personal, new byte[0]);
            for (int i = 0; i < 8; i++) {
                k[2 * d] |= (sub[i] & 0xffL) << (8 * i);
                k[2 * d + 1] |= (sub[8 + i] & 0xffL) << (8 * i);
            }
            Arrays.fill(sub, (byte) 0);
        }
        derived.put(epoch, k);
        return k;
    }
}
