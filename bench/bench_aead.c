// bench_aead.c: single-thread throughput of the TLS record AEADs of the BoringSSL the gateway
// links (android-libboringssl), on full 16 KiB records: what each byte of a bulk transfer costs
// the gateway in the library's crypto, whatever the gateway itself does.
// Usage: bench_aead [seconds_per_run] ; prints one line per AEAD and direction.
#include <openssl/aead.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_base.h"

enum {
    record_bytes = 16384,
    tag_bytes = 16,
    batch = 256, // records between clock reads
};

struct aead_case {
    const char *name;
    const EVP_AEAD *(*aead)(void);
    size_t key_len;
};

// run seals (open = false) or opens `record_bytes` records with `a` for `secs` seconds and
// returns GB/s of plaintext, or a negative value if the library refused.
static double run(const struct aead_case *a, bool open, double secs) {
    static uint8_t key[32], nonce[12];
    static uint8_t plain[record_bytes], sealed[record_bytes + tag_bytes];
    EVP_AEAD_CTX ctx;
    if (!EVP_AEAD_CTX_init(&ctx, a->aead(), key, a->key_len, tag_bytes, NULL)) {
        return -1.0;
    }
    size_t sealed_len = 0;
    if (!EVP_AEAD_CTX_seal(&ctx, sealed, &sealed_len, sizeof(sealed), nonce, sizeof(nonce), plain,
                           sizeof(plain), NULL, 0)) {
        EVP_AEAD_CTX_cleanup(&ctx);
        return -1.0;
    }
    uint64_t t0 = core_base_now_ns();
    uint64_t end = t0 + (uint64_t)(secs * 1e9);
    uint64_t records = 0;
    uint64_t now = t0;
    bool ok = true;
    while (ok && now < end) {
        for (int i = 0; i < batch && ok; i++) {
            size_t n = 0;
            ok = open ? EVP_AEAD_CTX_open(&ctx, plain, &n, sizeof(plain), nonce, sizeof(nonce),
                                          sealed, sealed_len, NULL, 0)
                      : EVP_AEAD_CTX_seal(&ctx, sealed, &n, sizeof(sealed), nonce,
                                          sizeof(nonce), plain, sizeof(plain), NULL, 0);
        }
        records += batch;
        now = core_base_now_ns();
    }
    EVP_AEAD_CTX_cleanup(&ctx);
    if (!ok) {
        return -1.0;
    }
    return (double)records * record_bytes / ((double)(now - t0) / 1e9) / 1e9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (!(secs > 0.0 && secs <= 60.0)) {
        fprintf(stderr, "usage: bench_aead [seconds_per_run (0..60]]\n");
        return 2;
    }
    static const struct aead_case cases[] = {
        {"aes-128-gcm", EVP_aead_aes_128_gcm, 16},
        {"aes-256-gcm", EVP_aead_aes_256_gcm, 32},
        {"chacha20-poly1305", EVP_aead_chacha20_poly1305, 32},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int open = 0; open < 2; open++) {
            double gbs = run(&cases[i], open != 0, secs);
            if (gbs < 0) {
                printf("%-18s %-5s failed\n", cases[i].name, open ? "open" : "seal");
                rc = 1;
                continue;
            }
            printf("%-18s %-5s %6.2f GB/s  %6.3f CPU-s/GB  (16 KiB records, 1 thread)\n",
                   cases[i].name, open ? "open" : "seal", gbs, 1.0 / gbs);
        }
    }
    return rc;
}
