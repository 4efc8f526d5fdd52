package dev.kanon.bench.streams;

/**
 * Identifier normalization, as kanon's normalize.c: each returns
 * the canonical form's length in out (at least ID_MAX bytes), or -1 when the
 * identifier is not valid (it is then not pseudonymized).
 */
final class Normalize {
    static final int ID_MAX = 256;
    static final int USER = 0, DEVICE = 1, PHONE = 2, EMAIL = 3, COOKIE = 4;

    private Normalize() {}

    private static boolean isSpace(byte c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0x0b;
    }

    private static byte lower(byte c) {
        return c >= 'A' && c <= 'Z' ? (byte) (c + 32) : c;
    }

    /** {start, end} of in[0..len) without surrounding white space. */
    private static int trimStart(byte[] in, int len) {
        int s = 0;
        while (s < len && isSpace(in[s]))
            s++;
        return s;
    }

    private static int trimEnd(byte[] in, int s, int len) {
        int e = len;
        while (e > s && isSpace(in[e - 1]))
            e--;
        return e;
    }

    static int normalize(int kind, byte[] in, int len, byte[] out, byte[] phoneCc, int nsnMax) {
        switch (kind) {
        case EMAIL: return email(in, len, out);
        case PHONE: return phone(in, len, out, phoneCc, nsnMax);
        case DEVICE: return device(in, len, out);
        default: return opaque(in, len, out);
        }
    }

    private static int email(byte[] in, int len, byte[] out) {
        int s = trimStart(in, len), e = trimEnd(in, s, len), n = e - s, at = 0, nAt = 0;
        if (n == 0 || n > ID_MAX)
            return -1;
        for (int i = 0; i < n; i++) {
            byte c = in[s + i];
            if (isSpace(c))
                return -1;
            if (c == '@') {
                at = i;
                nAt++;
            }
            out[i] = lower(c);
        }
        if (nAt != 1 || at == 0 || at == n - 1)
            return -1;
        return n;
    }

    /** Longest national significant number per calling code (normalize.c). */
    static int nsnMax(String cc) {
        switch (cc) {
        case "86": case "49": return 11;
        case "852": case "853": case "65": return 8;
        case "886": case "33": case "61": case "855": case "66": return 9;
        default: return 10; // 1, 44, 81, 82, 91, 60, 7, 84 and any other
        }
    }

    private static int phone(byte[] in, int len, byte[] out, byte[] cc, int nsnMax) {
        byte[] d = new byte[32];
        int nd = 0;
        boolean plus = false;
        int s = trimStart(in, len), e = trimEnd(in, s, len);
        for (int i = s; i < e; i++) {
            byte c = in[i];
            if (c >= '0' && c <= '9') {
                if (nd == d.length)
                    return -1;
                d[nd++] = c;
            } else if (c == '+' && nd == 0 && !plus) {
                plus = true;
            } else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' || c == '\t')) {
                return -1; // letters, extensions, stray symbols
            }
        }
        int num = 0, n = nd;
        if (!plus && n > 2 && d[0] == '0' && d[1] == '0') { // 00: international prefix
            plus = true;
            num += 2;
            n -= 2;
        }
        out[0] = '+';
        int o = 1;
        if (!plus) {
            boolean hasCc = n > nsnMax;
            for (int i = 0; hasCc && i < cc.length; i++)
                hasCc = d[num + i] == cc[i];
            if (!hasCc) {
                if (n > 0 && d[num] == '0') { // trunk prefix
                    num++;
                    n--;
                }
                System.arraycopy(cc, 0, out, 1, cc.length);
                o += cc.length;
            }
        }
        if (n == 0 || d[num] == '0')
            return -1;
        System.arraycopy(d, num, out, o, n);
        o += n;
        if (o - 1 < 8 || o - 1 > 15) // E.164: at most 15 digits
            return -1;
        return o;
    }

    private static int device(byte[] in, int len, byte[] out) {
        int n = 0;
        for (int i = 0; i < len; i++) {
            byte c = in[i];
            if (isSpace(c) || c == '-' || c == ':' || c == '.' || c == '_')
                continue;
            if (n == ID_MAX)
                return -1;
            out[n++] = lower(c);
        }
        return n > 0 ? n : -1;
    }

    private static int opaque(byte[] in, int len, byte[] out) {
        int s = trimStart(in, len), e = trimEnd(in, s, len), n = e - s;
        if (n == 0 || n > ID_MAX)
            return -1;
        System.arraycopy(in, s, out, 0, n);
        return n;
    }
}
