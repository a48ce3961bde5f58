// atls_bench_conn.c: the atls-bench client engine: one io_uring per thread drives many pgwire
// connections (connect, optional SSLRequest, TLS 1.3 through memory BIOs, startup, messages).
// One recv and at most one send are in flight per connection; a slot is released only when
// neither is, so no completion can reach a recycled slot (the generation in user_data checks it).
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core_base.h"

#include "atls_bench.h"

enum op {
    OP_CONNECT = 1,
    OP_RECV = 2,
    OP_SEND = 3,
};

#define SEND_LOW_WATER_BYTES (256u * 1024u)
#define PLAIN_SCRATCH_BYTES (64u * 1024u)

static uint64_t ud_pack(enum op op, const struct bench_conn *c) {
    return (uint64_t)op | (uint64_t)c->idx << 8 | (uint64_t)c->gen << 32;
}

static struct io_uring_sqe *get_sqe(struct bench_loop *l) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (sqe == NULL) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

int bench_loop_init(struct bench_loop *l, uint32_t conns_max, const struct bench_target *t,
                    SSL_CTX *ctx, const struct bench_driver *drv) {
    memset(l, 0, sizeof(*l));
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = BENCH_RING_ENTRIES * 4;
    p.flags |= IORING_SETUP_CQSIZE;
    int rc = io_uring_queue_init_params(BENCH_RING_ENTRIES, &l->ring, &p);
    if (rc < 0) {
        return rc;
    }
    l->conns = calloc(conns_max, sizeof(*l->conns));
    l->plain = malloc(PLAIN_SCRATCH_BYTES);
    if (l->conns == NULL || l->plain == NULL) {
        io_uring_queue_exit(&l->ring);
        free(l->conns);
        free(l->plain);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < conns_max; i++) {
        l->conns[i].idx = i;
        l->conns[i].fd = -1;
        l->conns[i].next_free = i + 1 < conns_max ? i + 1 : UINT32_MAX;
    }
    l->conns_max = conns_max;
    l->free_head = 0;
    l->target = t;
    l->ctx = ctx;
    l->drv = *drv;
    return 0;
}

void bench_loop_cleanup(struct bench_loop *l) {
    if (l->conns == NULL) {
        return;
    }
    for (uint32_t i = 0; i < l->conns_max; i++) {
        struct bench_conn *c = &l->conns[i];
        free(c->rx);
        c->rx = NULL;
        free(c->tx);
        c->tx = NULL;
        bench_pg_parser_cleanup(&c->parser);
    }
    free(l->conns);
    l->conns = NULL;
    free(l->plain);
    l->plain = NULL;
    io_uring_queue_exit(&l->ring);
}

static void note_error(struct bench_loop *l, const char *why) {
    l->errors++;
    if (l->first_error[0] == '\0') {
        snprintf(l->first_error, sizeof(l->first_error), "%s", why);
    }
}

static void arm_recv(struct bench_loop *l, struct bench_conn *c) {
    if (c->recv_inflight || c->fd < 0) {
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_recv(sqe, c->fd, c->rx, BENCH_RX_BYTES, 0);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_RECV, c));
    c->recv_inflight = true;
}

static void release(struct bench_loop *l, struct bench_conn *c) {
    if (c->recv_inflight || c->send_inflight || c->connect_inflight) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->ssl != NULL) {
        SSL_free(c->ssl); // frees both BIOs
        c->ssl = NULL;
        c->rbio = NULL;
        c->wbio = NULL;
    }
    if (c->wbio != NULL) {
        BIO_free(c->wbio);
        c->wbio = NULL;
    }
    c->state = BENCH_CONN_FREE;
    c->gen++;
    c->next_free = l->free_head;
    l->free_head = c->idx;
    l->live--;
}

// finish: the connection is done (failed or closed). Shut the socket so the pending recv
// completes, tell the driver once, release when no operation is in flight.
static void finish(struct bench_loop *l, struct bench_conn *c, bool failed, const char *why) {
    if (c->state == BENCH_CONN_FREE) {
        return;
    }
    if (c->state != BENCH_CONN_CLOSING) {
        c->state = BENCH_CONN_CLOSING;
        if (failed) {
            note_error(l, why);
        }
        if (l->drv.on_closed != NULL) {
            l->drv.on_closed(l, c, failed, why);
        }
        if (c->fd >= 0) {
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    release(l, c);
}

void bench_conn_fail(struct bench_loop *l, struct bench_conn *c, const char *why) {
    finish(l, c, true, why);
}

// flush moves queued bytes from the write BIO into the send buffer and submits one send.
static void flush(struct bench_loop *l, struct bench_conn *c) {
    if (c->send_inflight || c->fd < 0 || c->state == BENCH_CONN_CLOSING) {
        return;
    }
    if (c->tx_off == c->tx_len) {
        // BIO_read's memcpy would take glibc's slow case (core_base_copy) when the send buffer
        // lies 1-63 bytes past the BIO's data modulo 4 KiB: start 64 bytes in then. Without
        // this the load generator, not the proxy, set the bulk upload rate in some runs.
        const uint8_t *data = NULL;
        size_t avail = 0;
        uint32_t at = 0;
        if (BIO_mem_contents(c->wbio, &data, &avail) &&
            core_base_copy_is_slow(c->tx, data, avail < BENCH_TX_BYTES ? avail : BENCH_TX_BYTES)) {
            at = BENCH_TX_SLACK;
        }
        c->tx_off = at;
        c->tx_len = at;
        int n = BIO_read(c->wbio, c->tx + at, (int)BENCH_TX_BYTES);
        if (n > 0) {
            c->tx_len = at + (uint32_t)n;
        }
    }
    if (c->tx_off == c->tx_len) {
        if (c->close_after_send) {
            finish(l, c, false, NULL);
        }
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_send(sqe, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_pack(OP_SEND, c));
    c->send_inflight = true;
}

size_t bench_conn_pending(const struct bench_conn *c) {
    return (size_t)BIO_pending(c->wbio) + (c->tx_len - c->tx_off);
}

int bench_conn_write(struct bench_loop *l, struct bench_conn *c, const void *data, size_t len) {
    if (c->state == BENCH_CONN_CLOSING || c->state == BENCH_CONN_FREE) {
        return -EIO;
    }
    if (c->ssl != NULL && c->state >= BENCH_CONN_STARTUP) {
        size_t at = 0;
        while (at < len) {
            size_t chunk = len - at > 16384 ? 16384 : len - at;
            int n = SSL_write(c->ssl, (const uint8_t *)data + at, (int)chunk);
            if (n <= 0) {
                ERR_clear_error();
                bench_conn_fail(l, c, "SSL_write failed");
                return -EIO;
            }
            at += (size_t)n;
        }
    } else if (BIO_write(c->wbio, data, (int)len) != (int)len) {
        bench_conn_fail(l, c, "out of memory queueing bytes");
        return -EIO;
    }
    flush(l, c);
    return 0;
}

int bench_conn_query(struct bench_loop *l, struct bench_conn *c, const char *sql) {
    uint8_t buf[1024];
    size_t n = bench_pg_put_msg(buf, sizeof(buf), 0, 'Q', sql, strlen(sql) + 1);
    if (n == 0) {
        return -ENOSPC;
    }
    c->t_op_ns = bench_now_ns();
    return bench_conn_write(l, c, buf, n);
}

void bench_conn_close(struct bench_loop *l, struct bench_conn *c, bool terminate) {
    if (c->state == BENCH_CONN_CLOSING || c->state == BENCH_CONN_FREE) {
        return;
    }
    if (terminate) {
        static const uint8_t x[5] = {'X', 0, 0, 0, 4};
        if (bench_conn_write(l, c, x, sizeof(x)) != 0) {
            return;
        }
    }
    c->close_after_send = true;
    flush(l, c);
}

static void send_startup(struct bench_loop *l, struct bench_conn *c) {
    uint8_t buf[256];
    size_t at = 8;
    const char *kv[] = {"user", l->target->user, "database", l->target->dbname,
                        "application_name", "atls-bench"};
    for (size_t i = 0; i < 6; i++) {
        size_t n = strlen(kv[i]) + 1;
        memcpy(buf + at, kv[i], n);
        at += n;
    }
    buf[at++] = 0;
    bench_pg_put_be32(buf, (uint32_t)at);
    bench_pg_put_be32(buf + 4, 196608u); // protocol 3.0
    c->state = BENCH_CONN_STARTUP;
    bench_conn_write(l, c, buf, at);
}

static void record_tls(struct bench_loop *l, SSL *ssl) {
    if (l->tls_version[0] != '\0') {
        return;
    }
    snprintf(l->tls_version, sizeof(l->tls_version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    snprintf(l->tls_cipher, sizeof(l->tls_cipher), "%s", ci ? SSL_CIPHER_standard_name(ci) : "?");
    const char *g = SSL_get_curve_name(SSL_get_curve_id(ssl));
    snprintf(l->tls_group, sizeof(l->tls_group), "%s", g ? g : "?");
    const uint8_t *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    snprintf(l->tls_alpn, sizeof(l->tls_alpn), "%.*s", (int)alpn_len, alpn ? (const char *)alpn : "");
}

// drive_handshake advances the TLS handshake; on success sends the StartupMessage.
static void drive_handshake(struct bench_loop *l, struct bench_conn *c) {
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        l->tls_handshakes++;
        record_tls(l, c->ssl);
        send_startup(l, c);
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        flush(l, c);
        return;
    }
    char why[BENCH_ERR_MAX];
    uint32_t ee = ERR_get_error();
    snprintf(why, sizeof(why), "TLS handshake failed: %s",
             ee ? ERR_reason_error_string(ee) : "peer closed");
    ERR_clear_error();
    flush(l, c); // let an alert go out
    bench_conn_fail(l, c, why);
}

// Context passed through the parser (the parser callback has a single pointer).
struct msg_ctx {
    struct bench_loop *l;
    struct bench_conn *c;
};

static int dispatch_msg(void *arg, uint8_t type, const uint8_t *body, uint32_t len) {
    struct msg_ctx *m = arg;
    struct bench_loop *l = m->l;
    struct bench_conn *c = m->c;
    if (c->state == BENCH_CONN_CLOSING) {
        return -ECANCELED;
    }
    if (type == 'E') {
        char why[BENCH_ERR_MAX];
        // Fields: type byte + NUL-terminated string; print the message ('M').
        const char *msg = "?";
        for (uint32_t i = 0; i < len && body[i] != 0;) {
            const char *s = (const char *)body + i + 1;
            if (body[i] == 'M') {
                msg = s;
            }
            i += 1 + (uint32_t)strnlen(s, len - i - 1) + 1;
        }
        snprintf(why, sizeof(why), "server error: %s", msg);
        bench_conn_fail(l, c, why);
        return -ECANCELED;
    }
    if (c->state == BENCH_CONN_STARTUP) {
        if (type == 'R' && (len < 4 || bench_pg_be32(body) != 0)) {
            bench_conn_fail(l, c, "server asks for a password (use trust auth)");
            return -ECANCELED;
        }
        if (type == 'Z') {
            c->state = BENCH_CONN_READY;
            l->drv.on_ready(l, c, true);
        }
        return 0;
    }
    if (type == 'Z') {
        l->drv.on_ready(l, c, false);
    } else if (l->drv.on_msg != NULL) {
        l->drv.on_msg(l, c, type, body, len);
    }
    return 0;
}

static void on_recv(struct bench_loop *l, struct bench_conn *c, int res) {
    c->recv_inflight = false;
    if (c->state == BENCH_CONN_CLOSING) {
        release(l, c);
        return;
    }
    if (res <= 0) {
        bench_conn_fail(l, c, res == 0 ? "peer closed the connection" : strerror(-res));
        return;
    }
    const uint8_t *data = c->rx;
    size_t len = (size_t)res;
    if (c->state == BENCH_CONN_SSLREQ) {
        if (data[0] != 'S') {
            bench_conn_fail(l, c, "SSLRequest refused by the server");
            return;
        }
        if (len > 1) {
            bench_conn_fail(l, c, "bytes after the SSLRequest answer");
            return;
        }
        c->state = BENCH_CONN_TLS;
        drive_handshake(l, c);
        arm_recv(l, c);
        return;
    }
    struct msg_ctx m = {l, c};
    if (c->ssl == NULL) {
        if (bench_pg_parser_feed(&c->parser, data, len, dispatch_msg, &m) == -EPROTO) {
            bench_conn_fail(l, c, "bad pgwire message length");
            return;
        }
    } else {
        BIO_write(c->rbio, data, (int)len);
        if (c->state == BENCH_CONN_TLS) {
            drive_handshake(l, c);
        }
        while (c->state >= BENCH_CONN_STARTUP && c->state != BENCH_CONN_CLOSING) {
            int n = SSL_read(c->ssl, l->plain, (int)PLAIN_SCRATCH_BYTES);
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e != SSL_ERROR_WANT_READ) {
                    ERR_clear_error();
                    bench_conn_fail(l, c, e == SSL_ERROR_ZERO_RETURN ? "peer sent close_notify"
                                                                     : "TLS read failed");
                }
                break;
            }
            if (bench_pg_parser_feed(&c->parser, l->plain, (size_t)n, dispatch_msg, &m) ==
                -EPROTO) {
                bench_conn_fail(l, c, "bad pgwire message length");
                break;
            }
        }
    }
    if (c->state == BENCH_CONN_CLOSING) {
        release(l, c);
        return;
    }
    arm_recv(l, c);
}

static void on_send(struct bench_loop *l, struct bench_conn *c, int res) {
    c->send_inflight = false;
    if (c->state == BENCH_CONN_CLOSING) {
        release(l, c);
        return;
    }
    if (res <= 0) {
        bench_conn_fail(l, c, res == 0 ? "send returned 0" : strerror(-res));
        return;
    }
    c->tx_off += (uint32_t)res;
    flush(l, c);
    if (c->state == BENCH_CONN_READY && l->drv.on_drained != NULL &&
        (size_t)BIO_pending(c->wbio) < SEND_LOW_WATER_BYTES) {
        l->drv.on_drained(l, c);
    }
}

static void on_connect(struct bench_loop *l, struct bench_conn *c, int res) {
    c->connect_inflight = false;
    if (c->state == BENCH_CONN_CLOSING) {
        release(l, c);
        return;
    }
    if (res < 0) {
        l->connect_errors++;
        char why[BENCH_ERR_MAX];
        snprintf(why, sizeof(why), "connect: %s", strerror(-res));
        bench_conn_fail(l, c, why);
        return;
    }
    arm_recv(l, c);
    switch (l->target->tls) {
    case BENCH_TLS_NONE:
        send_startup(l, c);
        break;
    case BENCH_TLS_SSLREQUEST: {
        static const uint8_t req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
        c->state = BENCH_CONN_SSLREQ;
        bench_conn_write(l, c, req, sizeof(req));
        break;
    }
    case BENCH_TLS_DIRECT:
        c->state = BENCH_CONN_TLS;
        drive_handshake(l, c);
        break;
    }
}

struct bench_conn *bench_conn_open(struct bench_loop *l, const struct bench_cert *cert) {
    if (l->free_head == UINT32_MAX) {
        return NULL;
    }
    struct bench_conn *c = &l->conns[l->free_head];
    if (c->rx == NULL) {
        c->rx = malloc(BENCH_RX_BYTES);
        c->tx = malloc(BENCH_TX_BYTES + BENCH_TX_SLACK);
        if (c->rx == NULL || c->tx == NULL || bench_pg_parser_init(&c->parser) != 0) {
            return NULL;
        }
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(l, "socket() failed (fd limit?)");
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l->ctx != NULL) {
        c->ssl = SSL_new(l->ctx);
        if (c->ssl == NULL || (cert != NULL && (SSL_use_certificate(c->ssl, cert->x509) != 1 ||
                                                SSL_use_PrivateKey(c->ssl, cert->pkey) != 1))) {
            ERR_clear_error();
            SSL_free(c->ssl);
            c->ssl = NULL;
            close(fd);
            note_error(l, "SSL_new or client certificate failed");
            return NULL;
        }
        SSL_set_app_data(c->ssl, l); // count_ticket's counter
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_connect_state(c->ssl);
    } else {
        c->wbio = BIO_new(BIO_s_mem());
    }
    l->free_head = c->next_free;
    l->live++;
    c->fd = fd;
    c->state = BENCH_CONN_CONNECTING;
    c->tx_len = 0;
    c->tx_off = 0;
    c->close_after_send = false;
    c->user_u64 = 0;
    c->user_u32 = 0;
    bench_pg_parser_reset(&c->parser);
    c->t_open_ns = bench_now_ns();
    c->t_op_ns = c->t_open_ns;
    // The address lives in the slot: the kernel reads it when the SQE is submitted, later.
    memset(&c->sa, 0, sizeof(c->sa));
    c->sa.sin_family = AF_INET;
    c->sa.sin_port = htons(l->target->port);
    inet_pton(AF_INET, l->target->host, &c->sa.sin_addr);
    struct io_uring_sqe *sqe = get_sqe(l);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&c->sa, sizeof(c->sa));
    io_uring_sqe_set_data64(sqe, ud_pack(OP_CONNECT, c));
    c->connect_inflight = true;
    return c;
}

int bench_loop_run(struct bench_loop *l, uint64_t hard_deadline_ns) {
    while (!(l->stop && l->live == 0)) {
        if (bench_now_ns() > hard_deadline_ns) {
            for (uint32_t i = 0; i < l->conns_max; i++) {
                if (l->conns[i].state != BENCH_CONN_FREE &&
                    l->conns[i].state != BENCH_CONN_CLOSING) {
                    bench_conn_fail(l, &l->conns[i], "hard deadline reached");
                }
            }
            if (l->live == 0) {
                break;
            }
            hard_deadline_ns = UINT64_MAX; // now wait for the shut-down sockets' completions
            l->stop = true;
        }
        uint64_t wait_ns = 10 * 1000 * 1000;
        if (l->wake_ns != 0) {
            uint64_t now = bench_now_ns();
            wait_ns = l->wake_ns <= now ? 0 : l->wake_ns - now < wait_ns ? l->wake_ns - now : wait_ns;
        }
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)wait_ns};
        struct io_uring_cqe *cqe = NULL;
        int rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR) {
            return rc;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe) {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            enum op op = (enum op)(ud & 0xff);
            uint32_t idx = (uint32_t)(ud >> 8) & 0xffffffu;
            uint32_t gen = (uint32_t)(ud >> 32);
            seen++;
            if (idx >= l->conns_max || l->conns[idx].gen != gen) {
                continue; // WARNING: cannot happen with release() waiting; kept as a guard
            }
            struct bench_conn *c = &l->conns[idx];
            switch (op) {
            case OP_CONNECT:
                on_connect(l, c, res);
                break;
            case OP_RECV:
                on_recv(l, c, res);
                break;
            case OP_SEND:
                on_send(l, c, res);
                break;
            }
            if (seen >= BENCH_CQE_BATCH_MAX) {
                break;
            }
        }
        io_uring_cq_advance(&l->ring, seen);
        if (l->drv.on_tick != NULL) {
            l->drv.on_tick(l);
        }
    }
    return 0;
}

// count_ticket is BoringSSL's new-session callback, which a TLS 1.3 client calls once for each
// NewSessionTicket it reads after the handshake (and never for the handshake's own session,
// which is not resumable without a ticket). Returns 0: BoringSSL keeps, then frees, the session.
static int count_ticket(SSL *ssl, SSL_SESSION *session) {
    (void)session;
    struct bench_loop *l = SSL_get_app_data(ssl);
    if (l != NULL) {
        l->tickets++; // one loop per thread: the storm thread counts in its own
    }
    return 0;
}

SSL_CTX *bench_tls_ctx_new(const struct bench_cert *cert) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        return NULL;
    }
    static const uint8_t alpn[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    // BoringSSL leaves Ed25519 out of a client's signature_algorithms by default; both proxies
    // present an Ed25519 server certificate (DESIGN.md §4 key types).
    static const uint16_t verify_prefs[] = {
        SSL_SIGN_ED25519,           SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256,
        SSL_SIGN_RSA_PKCS1_SHA256,  SSL_SIGN_ECDSA_SECP384R1_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA384,
        SSL_SIGN_RSA_PKCS1_SHA384,  SSL_SIGN_RSA_PSS_RSAE_SHA512,    SSL_SIGN_RSA_PKCS1_SHA512,
    };
    if (SSL_CTX_set_verify_algorithm_prefs(ctx, verify_prefs,
                                           sizeof(verify_prefs) / sizeof(verify_prefs[0])) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    // The client "caches" sessions only to be told of each ticket (count_ticket): no internal
    // cache, and no connection is ever given a session to resume. The ClientHello is the same
    // as with the cache off (BoringSSL offers psk_dhe_ke either way), so servers that issue
    // tickets do so here as they would for any TLS 1.3 client.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, count_ticket);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (cert != NULL &&
        (SSL_CTX_use_certificate(ctx, cert->x509) != 1 ||
         SSL_CTX_use_PrivateKey(ctx, cert->pkey) != 1)) {
        fprintf(stderr, "atls-bench: client certificate and key do not match\n");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int bench_cert_load(struct bench_cert *out, const char *cert_path, const char *key_path) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(cert_path, "r");
    if (f != NULL) {
        out->x509 = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    f = fopen(key_path, "r");
    if (f != NULL) {
        out->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (out->x509 == NULL || out->pkey == NULL) {
        fprintf(stderr, "atls-bench: cannot read certificate %s or key %s\n", cert_path, key_path);
        bench_cert_cleanup(out);
        return -EINVAL;
    }
    return 0;
}

void bench_cert_cleanup(struct bench_cert *c) {
    X509_free(c->x509);
    c->x509 = NULL;
    EVP_PKEY_free(c->pkey);
    c->pkey = NULL;
}

static int crt_only(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 4 && strcmp(d->d_name + n - 4, ".crt") == 0;
}

int bench_cert_pool_load(struct bench_cert **out, uint32_t *n, const char *dir) {
    *out = NULL;
    *n = 0;
    struct dirent **names = NULL;
    int count = scandir(dir, &names, crt_only, alphasort);
    if (count <= 0) {
        fprintf(stderr, "atls-bench: --cert-pool %s: %s\n", dir,
                count < 0 ? strerror(errno) : "no NAME.crt in it");
        free(names);
        return count < 0 ? -errno : -ENOENT;
    }
    struct bench_cert *certs = calloc((size_t)count, sizeof(*certs));
    int rc = certs == NULL ? -ENOMEM : 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0) {
            char crt[4096], key[4096];
            size_t base = strlen(names[i]->d_name) - 4;
            snprintf(crt, sizeof(crt), "%s/%s", dir, names[i]->d_name);
            snprintf(key, sizeof(key), "%s/%.*s.key", dir, (int)base, names[i]->d_name);
            rc = bench_cert_load(&certs[i], crt, key);
            if (rc == 0 && X509_check_private_key(certs[i].x509, certs[i].pkey) != 1) {
                ERR_clear_error();
                fprintf(stderr, "atls-bench: %s and its key do not match\n", crt);
                rc = -EINVAL;
            }
        }
        free(names[i]);
    }
    free(names);
    if (rc != 0) {
        for (int i = 0; certs != NULL && i < count; i++) {
            bench_cert_cleanup(&certs[i]);
        }
        free(certs);
        return rc;
    }
    *out = certs;
    *n = (uint32_t)count;
    return 0;
}
