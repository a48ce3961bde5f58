// core_tls.c: server SSL_CTX construction and the BIO that connects BoringSSL to the ring.
// The SSL never owns a file descriptor: reads come from the connection's held ring buffers and
// writes go to its send chunk. BoringSSL's 1/0 results are translated only here and in attest.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <time.h>

#include "attest.h"
#include "core_certcache.h"
#include "core_internal.h"

static const uint8_t alpn_pg[] = {'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};

static BIO_METHOD *ring_bio_method; // created once at startup, read-only afterwards
// SSL_CTX ex_data index of the X509_STORE holding [tls] client_ca (created with the BIO method).
// The contexts use TLS_with_buffers_method, which keeps no X509 objects and no store of its own.
static int client_ca_index = -1;

// While the handshake thread holds the connection (hs_away), the BIO reads the bytes the
// worker staged in the job and writes into the job: the thread never touches the worker's ring
// buffers or send chunks.
static int job_read(BIO *bio, struct core_hs_job *job, char *out, int len) {
    uint32_t avail = job->in_len - job->in_off;
    if (avail == 0) {
        if (job->in_eof) {
            return 0;
        }
        BIO_set_retry_read(bio);
        return -1;
    }
    uint32_t n = (uint32_t)len < avail ? (uint32_t)len : avail;
    memcpy(out, job->in + job->in_off, n);
    job->in_off += n;
    return (int)n;
}

static int job_write(BIO *bio, struct core_hs_job *job, const char *in, int len) {
    uint32_t room = job->out_cap - job->out_len;
    if (room == 0) {
        BIO_set_retry_write(bio);
        return -1;
    }
    uint32_t n = (uint32_t)len < room ? (uint32_t)len : room;
    memcpy(job->out + job->out_len, in, n);
    job->out_len += n;
    return (int)n;
}

static int bio_read(BIO *bio, char *out, int len) {
    struct core_conn *conn = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    if (conn->hs_away) {
        return job_read(bio, core_hs_job_of(conn->shard, conn->hs_job), out, len);
    }
    struct core_side *side = &conn->side[CORE_SIDE_CLIENT];
    uint32_t n = core_shard_in_read(conn->shard, side, (uint8_t *)out, (uint32_t)len);
    if (n > 0) {
        // BoringSSL reads a record's 5-byte header, then its body, which TLS 1.3 decrypts in
        // place: a large body's address is where SSL_read will copy plaintext from (only a
        // speed hint for tls_read_into_backend; nothing depends on it being right).
        if (conn->tls_rx_header && (uint32_t)len >= CORE_BASE_COPY_LOOP_MIN) {
            conn->tls_rx_page_off = (uint16_t)((uintptr_t)out & 4095u);
            conn->tls_rx_known = true;
        }
        conn->tls_rx_header = len == SSL3_RT_HEADER_LENGTH && n == (uint32_t)len;
        return (int)n;
    }
    if (side->recv_eof) {
        return 0; // EOF: BoringSSL reports SSL_ERROR_SYSCALL (or ZERO_RETURN after close_notify)
    }
    BIO_set_retry_read(bio);
    return -1;
}

static int bio_write(BIO *bio, const char *in, int len) {
    struct core_conn *conn = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    if (conn->hs_away) {
        return job_write(bio, core_hs_job_of(conn->shard, conn->hs_job), in, len);
    }
    uint32_t n = core_shard_out_append(conn->shard, &conn->side[CORE_SIDE_CLIENT],
                                       (const uint8_t *)in, (uint32_t)len);
    if (n == 0) {
        BIO_set_retry_write(bio);
        return -1;
    }
    return (int)n;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)bio;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

// verify_attested: the custom verifier of attested mode. It runs before the client's
// CertificateVerify is checked, so it proves nothing about key possession: it only runs the
// cheap checks and records their outcome. The decision is made after the handshake.
static enum ssl_verify_result_t verify_attested(SSL *ssl, uint8_t *out_alert) {
    struct core_conn *conn = BIO_get_data(SSL_get_rbio(ssl));
    if (conn == NULL) {
        *out_alert = SSL_AD_INTERNAL_ERROR;
        return ssl_verify_invalid;
    }
    core_attest_on_verify(conn->shard, conn);
    return ssl_verify_ok;
}

// chain_key writes the cache key of the peer's chain into `out` (CORE_CERTCACHE_KEY_BYTES):
// SHA-256 over the certificate count, then each certificate's length and DER, leaf first.
static void chain_key(uint8_t *out, const STACK_OF(CRYPTO_BUFFER) *chain) {
    SHA256_CTX h;
    uint8_t be[4];
    size_t n = sk_CRYPTO_BUFFER_num(chain);
    SHA256_Init(&h); // cannot fail in BoringSSL
    core_pgwire_put_be32(be, (uint32_t)n);
    SHA256_Update(&h, be, sizeof(be));
    for (size_t i = 0; i < n; i++) {
        const CRYPTO_BUFFER *b = sk_CRYPTO_BUFFER_value(chain, i);
        core_pgwire_put_be32(be, (uint32_t)CRYPTO_BUFFER_len(b));
        SHA256_Update(&h, be, sizeof(be));
        SHA256_Update(&h, CRYPTO_BUFFER_data(b), CRYPTO_BUFFER_len(b));
    }
    STATIC_ASSERT(SHA256_DIGEST_LENGTH == CORE_CERTCACHE_KEY_BYTES, "the key is a SHA-256");
    SHA256_Final(out, &h);
}

// chain_window computes when every certificate of `chain` (leaf to trust anchor) is valid at
// once: the latest notBefore into `out_not_before` and the earliest notAfter into `out_not_after`.
static bool chain_window(int64_t *out_not_before, int64_t *out_not_after, STACK_OF(X509) *chain) {
    int64_t not_before = INT64_MIN;
    int64_t not_after = INT64_MAX;
    size_t n = sk_X509_num(chain);
    for (size_t i = 0; i < n; i++) {
        const X509 *x = sk_X509_value(chain, i);
        int64_t b = 0;
        int64_t a = 0;
        if (!attest_cert_time_unix(&b, X509_get0_notBefore(x)) ||
            !attest_cert_time_unix(&a, X509_get0_notAfter(x))) {
            return false;
        }
        not_before = b > not_before ? b : not_before;
        not_after = a < not_after ? a : not_after;
    }
    *out_not_before = not_before;
    *out_not_after = not_after;
    return n > 0;
}

// verify_full runs the X.509 verification BoringSSL's TLS_method runs for SSL_VERIFY_PEER without
// a custom verifier (ssl_crypto_x509_session_verify_cert_chain): the peer's certificates, leaf
// first, parsed as it parses them and passed as the untrusted chain, the client CA `store`, purpose
// "ssl_client". (Its SSL-level X509_VERIFY_PARAM, always empty here, does not exist with
// TLS_with_buffers_method: nothing ever sets verify parameters on our contexts.) On success the
// validity window of the verified chain goes to `out_not_before` and `out_not_after` (both 0
// when it cannot be read: then the chain is not cached).
static enum ssl_verify_result_t verify_full(SSL *ssl, X509_STORE *store,
                                            const STACK_OF(CRYPTO_BUFFER) *peer,
                                            int64_t *out_not_before, int64_t *out_not_after,
                                            uint8_t *out_alert) {
    enum ssl_verify_result_t ret = ssl_verify_invalid;
    *out_alert = SSL_AD_INTERNAL_ERROR;
    *out_not_before = 0;
    *out_not_after = 0;
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_STORE_CTX *vctx = X509_STORE_CTX_new();
    if (store == NULL || chain == NULL || vctx == NULL) {
        goto out_free;
    }
    for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(peer); i++) {
        X509 *x = X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(peer, i));
        if (x == NULL) {
            *out_alert = SSL_AD_DECODE_ERROR; // what BoringSSL sends for an unparsable chain
            goto out_free;
        }
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            goto out_free;
        }
    }
    if (sk_X509_num(chain) == 0 ||
        !X509_STORE_CTX_init(vctx, store, sk_X509_value(chain, 0), chain) ||
        !X509_STORE_CTX_set_ex_data(vctx, SSL_get_ex_data_X509_STORE_CTX_idx(), ssl) ||
        !X509_STORE_CTX_set_default(vctx, "ssl_client")) {
        goto out_free;
    }
    if (X509_verify_cert(vctx) <= 0) {
        *out_alert = (uint8_t)SSL_alert_from_verify_result(X509_STORE_CTX_get_error(vctx));
        goto out_free;
    }
    if (!chain_window(out_not_before, out_not_after, X509_STORE_CTX_get0_chain(vctx))) {
        *out_not_before = 0;
        *out_not_after = 0;
    }
    ret = ssl_verify_ok;

out_free:
    X509_STORE_CTX_free(vctx);
    sk_X509_pop_free(chain, X509_free);
    ERR_clear_error(); // BoringSSL queues its own CERTIFICATE_VERIFY_FAILED on a denial
    return ret;
}

// verify_client checks the chain `ssl`'s peer presented against the client CA of the worker's
// current TLS context: a chain this worker already verified against it, still inside its
// validity window, is accepted without parsing it again; any other goes through verify_full
// and, once it passes, into the cache.
static enum ssl_verify_result_t verify_client(struct core_shard *shard, SSL *ssl,
                                              uint8_t *out_alert) {
    const STACK_OF(CRYPTO_BUFFER) *peer = SSL_get0_peer_certificates(ssl);
    if (peer == NULL || sk_CRYPTO_BUFFER_num(peer) == 0) {
        *out_alert = SSL_AD_INTERNAL_ERROR; // FAIL_IF_NO_PEER_CERT answers an empty chain
        return ssl_verify_invalid;
    }
    // Always the current context's CA, also for an SSL made before a reload (a handshake that
    // spans it): a CA removed by the reload admits no one from then on. The handshake thread
    // reads shard->ssl_ctx too; reloads wait for its steps (on_event).
    X509_STORE *store = SSL_CTX_get_ex_data(shard->ssl_ctx, client_ca_index);
    struct core_certcache *cache = shard->certcache;
    uint8_t key[CORE_CERTCACHE_KEY_BYTES];
    chain_key(key, peer);
    int64_t now_s = (int64_t)time(NULL); // the clock X509_verify_cert reads
    if (cache != NULL && core_certcache_has(cache, key, now_s)) {
        atomic_fetch_add_explicit(&shard->counters.client_cert_cache_hits, 1, memory_order_relaxed);
        return ssl_verify_ok;
    }
    atomic_fetch_add_explicit(&shard->counters.client_cert_verifications, 1, memory_order_relaxed);
    int64_t not_before_s = 0;
    int64_t not_after_s = 0;
    enum ssl_verify_result_t ret =
        verify_full(ssl, store, peer, &not_before_s, &not_after_s, out_alert);
    if (ret == ssl_verify_ok && cache != NULL) {
        core_certcache_insert(cache, key, not_before_s, not_after_s);
    }
    return ret;
}

// verify_mtls: the verifier of mutual-TLS mode (verify_client). BoringSSL checks the client's
// CertificateVerify (possession of the key) after this, on every handshake.
static enum ssl_verify_result_t verify_mtls(SSL *ssl, uint8_t *out_alert) {
    struct core_conn *conn = BIO_get_data(SSL_get_rbio(ssl));
    if (conn == NULL) {
        *out_alert = SSL_AD_INTERNAL_ERROR;
        return ssl_verify_invalid;
    }
    ASSERT(conn->shard != NULL);
    return verify_client(conn->shard, ssl, out_alert);
}

bool core_tls_client_still_trusted(struct core_shard *shard, struct core_conn *conn,
                                   char *why, size_t why_len) {
    ASSERT(conn->ssl != NULL);
    uint8_t alert = 0;
    if (verify_client(shard, conn->ssl, &alert) == ssl_verify_ok) {
        return true;
    }
    snprintf(why, why_len, "its client certificate no longer verifies against [tls] client_ca "
             "(%s)", SSL_alert_desc_string_long(alert));
    return false;
}

static int select_alpn(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                       unsigned in_len, void *arg) {
    (void)ssl;
    (void)arg;
    CBS list;
    CBS_init(&list, in, in_len);
    while (CBS_len(&list) > 0) {
        CBS proto;
        if (!CBS_get_u8_length_prefixed(&list, &proto)) {
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        if (CBS_len(&proto) == sizeof(alpn_pg) &&
            memcmp(CBS_data(&proto), alpn_pg, sizeof(alpn_pg)) == 0) {
            *out = CBS_data(&proto);
            *out_len = (uint8_t)CBS_len(&proto);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    // A client that speaks ALPN but not "postgresql" is talking some other protocol.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool core_tls_alpn_is_postgresql(const SSL *ssl) {
    const uint8_t *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == sizeof(alpn_pg) && memcmp(p, alpn_pg, n) == 0;
}

void core_tls_describe_error(char *out, size_t out_len) {
    uint32_t e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(out, out_len, "connection closed during TLS");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(out, out_len, "%s", r ? r : "TLS error");
    }
    ERR_clear_error();
}

// read_chain reads the PEM certificates of `path`, leaf first, the way
// SSL_CTX_use_certificate_chain_file reads them, into `out` (CORE_TLS_CHAIN_MAX entries,
// `*out_len` set) and the parsed leaf into `out_leaf`. Returns 0, or -EINVAL for no certificate,
// a broken one or too many. On failure the caller still frees what was stored.
static int read_chain(CRYPTO_BUFFER **out, size_t *out_len, X509 **out_leaf, const char *path) {
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        return -EINVAL;
    }
    int ret = -EINVAL;
    X509 *x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    while (x != NULL) {
        uint8_t *der = NULL;
        int len = i2d_X509(x, &der);
        CRYPTO_BUFFER *buf = len > 0 ? CRYPTO_BUFFER_new(der, (size_t)len, NULL) : NULL;
        OPENSSL_free(der);
        if (buf == NULL || *out_len == CORE_TLS_CHAIN_MAX) {
            CRYPTO_BUFFER_free(buf);
            X509_free(x);
            goto out_free_bio;
        }
        out[(*out_len)++] = buf;
        if (*out_leaf == NULL) {
            *out_leaf = x;
        } else {
            X509_free(x);
        }
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    }
    // The end of the file reads as "no start line"; anything else is a broken certificate.
    uint32_t e = ERR_peek_last_error();
    if (*out_len > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ret = 0;
    }
out_free_bio:
    BIO_free(bio);
    ERR_clear_error();
    return ret;
}

static EVP_PKEY *read_key(const char *path) {
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    return key;
}

// load_cert_and_key gives `ctx` the [tls] cert chain and key as CRYPTO_BUFFERs (the only form
// TLS_with_buffers_method takes), with the checks and errors SSL_CTX_use_certificate_chain_file,
// SSL_CTX_use_PrivateKey_file and SSL_CTX_check_private_key made before.
static int load_cert_and_key(SSL_CTX *ctx, const struct core_config *cfg, char *err,
                             size_t err_len) {
    CRYPTO_BUFFER *chain[CORE_TLS_CHAIN_MAX] = {NULL};
    size_t chain_len = 0;
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    int ret = -EINVAL;
    if (read_chain(chain, &chain_len, &leaf, cfg->tls_cert) != 0) {
        snprintf(err, err_len,
                 "%s:%u: [tls] cert '%s': not a PEM certificate chain (of at most %u)", cfg->path,
                 cfg->line_tls_cert, cfg->tls_cert, CORE_TLS_CHAIN_MAX);
        goto out_free;
    }
    key = read_key(cfg->tls_key);
    if (key == NULL) {
        snprintf(err, err_len, "%s:%u: [tls] key '%s': not a PEM private key", cfg->path,
                 cfg->line_tls_key, cfg->tls_key);
        goto out_free;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        snprintf(err, err_len, "%s:%u: [tls] key '%s' does not match cert '%s'", cfg->path,
                 cfg->line_tls_key, cfg->tls_key, cfg->tls_cert);
        goto out_free;
    }
    if (SSL_CTX_set_chain_and_key(ctx, chain, chain_len, key, NULL) != 1) {
        const char *why = ERR_reason_error_string(ERR_peek_last_error());
        snprintf(err, err_len, "%s:%u: [tls] cert '%s' with key '%s': cannot be used for TLS (%s)",
                 cfg->path, cfg->line_tls_cert, cfg->tls_cert, cfg->tls_key,
                 why != NULL ? why : "unknown reason");
        goto out_free;
    }
    ret = 0;

out_free:
    for (size_t i = 0; i < chain_len; i++) {
        CRYPTO_BUFFER_free(chain[i]); // the context holds its own references
    }
    X509_free(leaf);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ret;
}

// free_client_ca is the ex_data destructor of client_ca_index: it runs in whichever thread
// drops the last reference to the SSL_CTX, when no SSL of it is left to read the store.
static void free_client_ca(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl,
                           void *argp) {
    (void)parent;
    (void)ad;
    (void)index;
    (void)argl;
    (void)argp;
    X509_STORE_free(ptr);
}

// load_client_ca attaches a store with the CA certificates of `path` to `ctx`.
static int load_client_ca(SSL_CTX *ctx, const struct core_config *cfg, char *err,
                          size_t err_len) {
    X509_STORE *store = X509_STORE_new();
    if (store == NULL || X509_STORE_load_locations(store, cfg->tls_client_ca, NULL) != 1) {
        snprintf(err, err_len, "%s:%u: [tls] client_ca '%s': not a PEM CA bundle", cfg->path,
                 cfg->line_tls_client_ca, cfg->tls_client_ca);
        X509_STORE_free(store);
        return -EINVAL;
    }
    if (!SSL_CTX_set_ex_data(ctx, client_ca_index, store)) {
        snprintf(err, err_len, "out of memory loading [tls] client_ca");
        X509_STORE_free(store);
        return -ENOMEM;
    }
    return 0; // owned by ctx from here: free_client_ca
}

SSL_CTX *core_tls_ctx_new(const struct core_config *cfg, char *err, size_t err_len) {
    if (ring_bio_method == NULL) {
        // First call happens on the main thread before any worker exists.
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "atls-ring");
        if (m == NULL || !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_write(m, bio_write) ||
            !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
            snprintf(err, err_len, "cannot create the TLS BIO method");
            return NULL;
        }
        ring_bio_method = m;
    }
    if (client_ca_index < 0) {
        // Also on the main thread before any worker exists.
        client_ca_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_client_ca);
        if (client_ca_index < 0) {
            snprintf(err, err_len, "cannot create the client CA index");
            return NULL;
        }
    }
    // Buffers only: BoringSSL never parses a peer certificate into an X509; verify_mtls parses
    // a client chain only when it is not in the worker's cache.
    SSL_CTX *ctx = SSL_CTX_new(TLS_with_buffers_method());
    if (ctx == NULL) {
        snprintf(err, err_len, "out of memory creating the TLS context");
        return NULL;
    }
    // TLS 1.3 only; no tickets and no session cache, so every connection authenticates afresh
    // (a resumed session would skip the client-certificate checks).
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    static const uint16_t sigalgs[] = {
        SSL_SIGN_ED25519,
        SSL_SIGN_ECDSA_SECP256R1_SHA256,
        SSL_SIGN_ECDSA_SECP384R1_SHA384,
        SSL_SIGN_RSA_PSS_RSAE_SHA256,
        SSL_SIGN_RSA_PSS_RSAE_SHA384,
        SSL_SIGN_RSA_PSS_RSAE_SHA512,
        SSL_SIGN_RSA_PKCS1_SHA256,
        SSL_SIGN_RSA_PKCS1_SHA384,
    };
    if (!SSL_CTX_set_verify_algorithm_prefs(ctx, sigalgs, ARRAY_LEN(sigalgs))) {
        snprintf(err, err_len, "cannot set verify algorithms");
        goto out_free;
    }
    if (load_cert_and_key(ctx, cfg, err, err_len) != 0) {
        goto out_free;
    }
    if (cfg->tls_client_ca[0] != '\0' && load_client_ca(ctx, cfg, err, err_len) != 0) {
        goto out_free;
    }
    if (cfg->attestation_required) {
        SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                  verify_attested);
    } else {
        SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                  verify_mtls);
    }
    ERR_clear_error();
    return ctx;

out_free:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int core_tls_conn_new(struct core_shard *shard, struct core_conn *conn) {
    ASSERT(conn->ssl == NULL);
    SSL *ssl = SSL_new(shard->ssl_ctx);
    if (ssl == NULL) {
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO *bio = BIO_new(ring_bio_method);
    if (bio == NULL) {
        SSL_free(ssl);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(bio, conn);
    SSL_set_bio(ssl, bio, bio); // one reference, owned by the SSL
    SSL_set_accept_state(ssl);
    SSL_set_shed_handshake_config(ssl, 1);
    conn->ssl = ssl;
    return 0;
}
