// core_tls.c: server SSL_CTX construction and the BIO that connects BoringSSL to the ring.
// The SSL never owns a file descriptor: reads come from the connection's held ring buffers and
// writes go to its send chunk. BoringSSL's 1/0 results are translated only here and in attest.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core_internal.h"

static const uint8_t alpn_pg[] = {'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};

static BIO_METHOD *ring_bio_method; // created once at startup, read-only afterwards

static int bio_read(BIO *bio, char *out, int len) {
    struct core_conn *conn = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    struct core_side *side = &conn->side[CORE_SIDE_CLIENT];
    uint32_t n = core_shard_in_read(conn->shard, side, (uint8_t *)out, (uint32_t)len);
    if (n > 0) {
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

static int load_cert_and_key(SSL_CTX *ctx, const struct core_config *cfg, char *err,
                             size_t err_len) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(err, err_len, "%s:%u: [tls] cert '%s': not a PEM certificate chain", cfg->path,
                 cfg->line_tls_cert, cfg->tls_cert);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_len, "%s:%u: [tls] key '%s': not a PEM private key", cfg->path,
                 cfg->line_tls_key, cfg->tls_key);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "%s:%u: [tls] key '%s' does not match cert '%s'", cfg->path,
                 cfg->line_tls_key, cfg->tls_key, cfg->tls_cert);
        return -EINVAL;
    }
    return 0;
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
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
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
    if (cfg->tls_client_ca[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
            snprintf(err, err_len, "%s:%u: [tls] client_ca '%s': not a PEM CA bundle",
                     cfg->path, cfg->line_tls_client_ca, cfg->tls_client_ca);
            goto out_free;
        }
    }
    if (cfg->attestation_required) {
        SSL_CTX_set_custom_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                                  verify_attested);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
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
