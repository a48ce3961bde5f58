// bench_attest.c: single-thread rates of (a) BoringSSL's raw P-384 ECDSA_do_verify, (b) report
// verification with a cached chain (real Genoa vector), (c) full client-certificate evidence
// verification (cheap extract + binding + verify, cached chain; simulated hierarchy), and
// (d) a cold chain verification (cache miss: RSA-PSS chain + extensions + P-384). (b) runs
// twice more per field code (portable C, BMI2/ADX assembly), alternating, as an A/B of the two.
// usage: bench_attest [SIM_DIR] [SECONDS_PER_CASE]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define REPORT_OFF_R 0x2A0
#define REPORT_OFF_S 0x2E8

static double now_s(void) {
    return (double)core_base_now_ns() / 1e9;
}

static size_t slurp(const char *name, uint8_t *buf, size_t cap) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/attest/vectors/%s", ATLS_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fatal("cannot open %s", path);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

typedef bool (*bench_fn)(void *ctx);

static void run(const char *label, bench_fn fn, void *ctx, double seconds) {
    uint64_t n = 0;
    double start = now_s(), t = start;
    while (t - start < seconds) {
        for (int i = 0; i < 16; i++) {
            if (!fn(ctx)) {
                fatal("%s: iteration failed", label);
            }
        }
        n += 16;
        t = now_s();
    }
    printf("%-44s %10.0f /s  (%8.1f us each, %llu iterations)\n", label, (double)n / (t - start),
           (t - start) * 1e6 / (double)n, (unsigned long long)n);
}

struct raw_ctx {
    uint8_t digest[48];
    ECDSA_SIG *sig;
    EC_KEY *key;
};

static bool raw_verify(void *p) {
    struct raw_ctx *c = p;
    return ECDSA_do_verify(c->digest, sizeof(c->digest), c->sig, c->key) == 1;
}

struct report_ctx {
    struct attest_verifier *v;
    uint8_t report[ATTEST_REPORT_BYTES];
    uint8_t vcek[4096];
    size_t vcek_len;
};

static bool report_verify(void *p) {
    struct report_ctx *c = p;
    struct attest_claims claims;
    return attest_verifier_verify_report(c->v, &claims, NULL, c->report, sizeof(c->report),
                                         c->vcek, c->vcek_len, NULL, 0, 1780000000) == ATTEST_OK;
}

struct cold_ctx {
    struct report_ctx a, b;
    bool flip;
};

static bool cold_verify(void *p) {
    struct cold_ctx *c = p; // cache of 1 entry, alternating two VCEKs: always a miss
    c->flip = !c->flip;
    return report_verify(c->flip ? &c->a : &c->b);
}

struct evidence_ctx {
    struct attest_verifier *v;
    uint8_t der[16384];
    size_t der_len;
};

static bool evidence_verify(void *p) {
    struct evidence_ctx *c = p;
    static struct attest_evidence ev;
    struct attest_claims claims;
    if (attest_evidence_from_cert(&ev, NULL, c->der, c->der_len) != ATTEST_OK ||
        attest_evidence_check_binding(&ev, NULL) != ATTEST_OK) {
        return false;
    }
    return attest_verifier_verify_evidence(c->v, &claims, NULL, &ev, (int64_t)time(NULL)) ==
           ATTEST_OK;
}

static struct attest_verifier *verifier(const char *roots, uint32_t cache) {
    struct attest_verifier_config cfg = {.chain_cache_max = cache};
    snprintf(cfg.roots, sizeof(cfg.roots), "%s", roots);
    struct attest_error err;
    struct attest_verifier *v = attest_verifier_new(&cfg, &err);
    if (v == NULL) {
        fatal("verifier: %s", err.msg);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *sim_dir = argc > 1 ? argv[1] : "bench-sim";
    double secs = argc > 2 ? atof(argv[2]) : 3.0;

    static struct report_ctx rep;
    rep.v = verifier("builtin", 0);
    slurp("mstee_genoa_v3_report.bin", rep.report, sizeof(rep.report));
    rep.vcek_len = slurp("mstee_genoa_v3_vcek.der", rep.vcek, sizeof(rep.vcek));

    // (a) raw P-384 verify of the same report signature.
    struct raw_ctx raw;
    const uint8_t *p = rep.vcek;
    X509 *x = d2i_X509(NULL, &p, (long)rep.vcek_len);
    EVP_PKEY *pk = X509_get_pubkey(x);
    raw.key = EVP_PKEY_get1_EC_KEY(pk);
    SHA384(rep.report, ATTEST_REPORT_SIGNED_BYTES, raw.digest);
    raw.sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(raw.sig, BN_le2bn(rep.report + REPORT_OFF_R, 72, NULL),
                   BN_le2bn(rep.report + REPORT_OFF_S, 72, NULL));
    run("raw ECDSA_do_verify P-384", raw_verify, &raw, secs);

    // (b) report verification with the chain cached (one P-384 verify each).
    run("report verify (cached chain, Genoa vector)", report_verify, &rep, secs);
    for (int round = 0; round < 2; round++) {
        if (attest_p384_use_adx(false)) {
            run("  the same, portable C field code", report_verify, &rep, secs);
        }
        if (attest_p384_use_adx(true)) {
            run("  the same, BMI2/ADX field code", report_verify, &rep, secs);
        }
    }
    attest_p384_use_default_code();

    // (c) full evidence from a client certificate (simulated hierarchy, cached chain).
    struct attest_provider_config pcfg;
    attest_provider_config_init(&pcfg);
    snprintf(pcfg.sim_dir, sizeof(pcfg.sim_dir), "%s", sim_dir);
    struct attest_client_cert cert = {0};
    struct attest_error err;
    uint8_t nonce[32] = {1, 2, 3};
    if (attest_cert_make(&cert, &err, attest_provider_find("simulated"), &pcfg,
                         ATTEST_CERT_KEY_ED25519, nonce, sizeof(nonce), 3600) != ATTEST_OK) {
        fatal("client cert: %s", err.msg);
    }
    static struct evidence_ctx evc;
    char ark[600];
    snprintf(ark, sizeof(ark), "%s/ark.pem", sim_dir);
    evc.v = verifier(ark, 0);
    if (attest_cert_pem_to_der(evc.der, sizeof(evc.der), &evc.der_len, cert.cert_pem,
                               cert.cert_pem_len) != 0) {
        fatal("pem");
    }
    run("evidence verify (cert extract+binding+verify)", evidence_verify, &evc, secs);

    // (d) cold chain: cache of one entry, two VCEKs alternating.
    static struct cold_ctx cold;
    cold.a = rep;
    cold.a.v = verifier("builtin", 1);
    cold.b = cold.a;
    slurp("trustee_genoa_siena_v3_report.bin", cold.b.report, sizeof(cold.b.report));
    cold.b.vcek_len = slurp("trustee_genoa_siena_v3_vcek.der", cold.b.vcek, sizeof(cold.b.vcek));
    run("report verify, cold chain (cache miss)", cold_verify, &cold, secs);

    uint64_t hits, misses;
    uint32_t entries;
    attest_verifier_cache_stats(rep.v, &hits, &misses, &entries);
    printf("cached-chain verifier: %llu hits, %llu misses\n", (unsigned long long)hits,
           (unsigned long long)misses);
    attest_cert_cleanup(&cert);
    attest_verifier_free(cold.a.v);
    attest_verifier_free(evc.v);
    attest_verifier_free(rep.v);
    ECDSA_SIG_free(raw.sig);
    EC_KEY_free(raw.key);
    EVP_PKEY_free(pk);
    X509_free(x);
    return 0;
}
