// atls_bench_attest.c: the attested certificate pool: one fresh nonce from the gateway's
// GET /api/v1/nonce per certificate, and one evidence-carrying certificate per nonce made with the
// attest library's simulated provider (the same path as `atlsctl client-cert`). Built before the
// timed section; each certificate is used for exactly one handshake.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atls_bench.h"
#include "attest.h"

#define NONCE_PER_ADDR_MAX 60u // the API's per-address burst is 64: stay under it
#define NONCE_ADDRS_MAX 250u
#define HTTP_RESP_BYTES_MAX 4096u

// http_nonce GETs /api/v1/nonce from `api` (host:port) with source address `src` and decodes the
// hex nonce. Returns 0, -EAGAIN (HTTP 429: rate limited) or -EPROTO/-errno.
static int http_nonce(const char *api, uint32_t src, uint8_t out[32]) {
    char resp[HTTP_RESP_BYTES_MAX];
    int rc = bench_http_get(resp, sizeof(resp), api, src, "/api/v1/nonce", "application/json");
    if (rc != 0) {
        return rc;
    }
    if (strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 429", 4) == 0) {
        return -EAGAIN;
    }
    const char *k = strstr(resp, "\"nonce\":\"");
    if (strncmp(resp + 8, " 200", 4) != 0 || k == NULL || strspn(k + 9, "0123456789abcdef") != 64) {
        fprintf(stderr, "atls-bench: nonce API answered: %.*s\n", (int)strcspn(resp, "\r\n"), resp);
        return -EPROTO;
    }
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        sscanf(k + 9 + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return 0;
}

struct pool_job {
    const struct bench_attest_opts *o;
    struct bench_cert *certs;
    uint8_t (*nonces)[32];
    uint32_t from, to;
    int rc;
};

static void *make_certs(void *arg) {
    struct pool_job *j = arg;
    const struct attest_provider_ops *ops = attest_provider_find("simulated");
    struct attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    cfg.sim.policy = ATTEST_POLICY_RESERVED_1;
    snprintf(cfg.sim_dir, sizeof(cfg.sim_dir), "%s", j->o->sim_dir);
    memcpy(cfg.sim.measurement, j->o->measurement, sizeof(cfg.sim.measurement));
    cfg.sim.guest_svn = j->o->svn;
    for (uint32_t i = j->from; i < j->to; i++) {
        struct attest_client_cert cc = {0};
        struct attest_error err = {0};
        if (attest_cert_make(&cc, &err, ops, &cfg, ATTEST_CERT_KEY_ED25519, j->nonces[i], 32,
                             3600) != ATTEST_OK) {
            fprintf(stderr, "atls-bench: attest_cert_make: %s: %s\n",
                    attest_status_code(err.status), err.msg);
            j->rc = -EIO;
            return NULL;
        }
        BIO *cb = BIO_new_mem_buf(cc.cert_pem, (int)cc.cert_pem_len);
        BIO *kb = BIO_new_mem_buf(cc.key_pem, (int)cc.key_pem_len);
        j->certs[i].x509 = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
        j->certs[i].pkey = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
        BIO_free(cb);
        BIO_free(kb);
        attest_cert_cleanup(&cc);
        if (j->certs[i].x509 == NULL || j->certs[i].pkey == NULL) {
            j->rc = -EIO;
            return NULL;
        }
    }
    return NULL;
}

int bench_attest_pool_make(struct bench_cert **out, uint32_t n,
                           const struct bench_attest_opts *o) {
    *out = NULL;
    uint8_t (*nonces)[32] = calloc(n ? n : 1, 32);
    struct bench_cert *certs = calloc(n ? n : 1, sizeof(*certs));
    if (nonces == NULL || certs == NULL) {
        free(nonces);
        free(certs);
        return -ENOMEM;
    }
    // 127.0.1.1, 127.0.1.2, ...: a new source address every NONCE_PER_ADDR_MAX nonces or on 429.
    uint32_t addr = 0, used = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0;) {
        if (used == NONCE_PER_ADDR_MAX) {
            addr++;
            used = 0;
        }
        if (addr >= NONCE_ADDRS_MAX) {
            fprintf(stderr, "atls-bench: nonce API rate limit: ran out of source addresses\n");
            rc = -EAGAIN;
            break;
        }
        rc = http_nonce(o->api, (127u << 24) | (1u << 8) | (addr + 1u), nonces[i]);
        if (rc == -EAGAIN) {
            used = NONCE_PER_ADDR_MAX;
            rc = 0;
            continue;
        }
        used++;
        i++;
    }
    if (rc != 0) {
        fprintf(stderr, "atls-bench: fetching nonces from %s failed: %s\n", o->api, strerror(-rc));
        free(nonces);
        free(certs);
        return rc;
    }
    uint32_t threads = o->threads ? o->threads : 1;
    threads = threads > 16 ? 16 : threads;
    struct pool_job jobs[16];
    pthread_t tids[16];
    for (uint32_t t = 0; t < threads; t++) {
        jobs[t] = (struct pool_job){.o = o, .certs = certs, .nonces = nonces,
                                    .from = (uint32_t)((uint64_t)n * t / threads),
                                    .to = (uint32_t)((uint64_t)n * (t + 1) / threads)};
        pthread_create(&tids[t], NULL, make_certs, &jobs[t]);
    }
    for (uint32_t t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        rc = rc != 0 ? rc : jobs[t].rc;
    }
    free(nonces);
    if (rc != 0) {
        for (uint32_t i = 0; i < n; i++) {
            bench_cert_cleanup(&certs[i]);
        }
        free(certs);
        return rc;
    }
    *out = certs;
    return 0;
}
