// core_api.c: the HTTP API on the control thread (libmicrohttpd's internal polling thread):
// GET /api/v1/nonce, /healthz, /readyz, /metrics. Responses are protobuf (proto/api.proto) with
// `Accept: application/x-protobuf`, JSON otherwise (same fields, one reflective encoder).
#include <arpa/inet.h>
#include <microhttpd.h>

#include "api.pb-c.h"
#include "core_internal.h"
#include "policy.h"
#include "proto.h"

#define API_BODY_MAX (16u * 1024u)
#define API_CONNECTIONS_MAX 256u

static bool wants_protobuf(struct MHD_Connection *conn) {
    const char *fmt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
    if (fmt != NULL) {
        return strcmp(fmt, "protobuf") == 0;
    }
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
    return accept != NULL && strstr(accept, "application/x-protobuf") != NULL;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const void *body,
                               size_t len, const char *type) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status,
                                    const char *text) {
    return respond(conn, status, text, strlen(text), "text/plain; charset=utf-8");
}

static enum MHD_Result respond_msg(struct MHD_Connection *conn, unsigned status,
                                   const ProtobufCMessage *msg) {
    static _Thread_local char buf[API_BODY_MAX];
    size_t len = 0;
    if (wants_protobuf(conn)) {
        if (proto_pack((uint8_t *)buf, &len, sizeof(buf), msg) != 0) {
            return respond_text(conn, 500, "response too large\n");
        }
        return respond(conn, status, buf, len, "application/x-protobuf");
    }
    if (proto_json_encode(buf, &len, sizeof(buf) - 1, msg) != 0) {
        return respond_text(conn, 500, "response too large\n");
    }
    buf[len++] = '\n';
    return respond(conn, status, buf, len, "application/json");
}

static enum MHD_Result api_nonce(struct core_proc *proc, struct MHD_Connection *conn) {
    const struct policy *pol = atomic_load(&proc->policy);
    if (pol == NULL || proc->nonces == NULL) {
        return respond_text(conn, 404, "nonces are issued only when [attestation] required\n");
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint64_t now = core_base_now_ns();
    if (ci != NULL && ci->client_addr != NULL &&
        policy_ratelimit_take(proc->nonce_limiter, ci->client_addr, now) !=
            POLICY_RATELIMIT_ALLOW) {
        return respond_text(conn, 429, "too many nonce requests from this address\n");
    }
    uint8_t nonce[32];
    uint32_t ttl = pol->nonce.ttl_s;
    int ret = policy_nonce_issue(proc->nonces, nonce, now, (uint64_t)ttl * 1000000000ull);
    if (ret == -ENOSPC) {
        return respond_text(conn, 503, "nonce table full of live nonces; retry later\n");
    }
    if (ret != 0) {
        return respond_text(conn, 500, "cannot issue a nonce\n");
    }
    char hex[65];
    core_base_hex_encode(hex, nonce, sizeof(nonce));
    Atls__NonceResponse msg = ATLS__NONCE_RESPONSE__INIT;
    msg.nonce = hex;
    msg.expires_in = ttl;
    msg.timestamp = core_base_wall_ns() / 1000000000ull;
    return respond_msg(conn, 200, &msg.base);
}

static uint32_t backends_up(const struct core_proc *proc) {
    uint64_t now = core_base_now_ns();
    uint32_t up = 0;
    for (uint32_t i = 0; i < proc->cfg.backend_count; i++) {
        if (atomic_load_explicit(&proc->backends[i].down_until, memory_order_relaxed) <= now) {
            up++;
        }
    }
    return up;
}

static enum MHD_Result api_health(struct core_proc *proc, struct MHD_Connection *conn,
                                  bool readiness) {
    Atls__Health msg = ATLS__HEALTH__INIT;
    msg.live = true;
    msg.backends_total = proc->cfg.backend_count;
    msg.backends_up = backends_up(proc);
    msg.store_healthy = true;
    bool draining = atomic_load(&proc->draining);
    msg.ready = !draining && msg.backends_up > 0;
    msg.reason = draining ? "draining" : (msg.backends_up == 0 ? "no backend reachable" : "");
    unsigned status = (!readiness || msg.ready) ? 200 : 503;
    return respond_msg(conn, status, &msg.base);
}

static uint64_t sum(const struct core_proc *proc, size_t offset) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        const atomic_uint_fast64_t *a =
            (const atomic_uint_fast64_t *)((const uint8_t *)&proc->shards[i].counters + offset);
        total += atomic_load_explicit(a, memory_order_relaxed);
    }
    return total;
}

static enum MHD_Result api_metrics(struct core_proc *proc, struct MHD_Connection *conn) {
    static const struct {
        const char *name;
        const char *type;
        const char *help;
        size_t offset;
    } rows[] = {
#define ROW(n, t, h, f) {n, t, h, offsetof(struct core_counters, f)}
        ROW("atls_connections_accepted_total", "counter", "TCP connections accepted", accepted),
        ROW("atls_connections_refused_full_total", "counter", "refused: slot table full",
            refused_full),
        ROW("atls_connections_active", "gauge", "connections holding a slot", active),
        ROW("atls_handshakes_ok_total", "counter", "TLS handshakes completed", handshakes_ok),
        ROW("atls_handshakes_failed_total", "counter", "TLS handshakes failed",
            handshakes_failed),
        ROW("atls_plaintext_refused_total", "counter", "clients refused for not using TLS",
            plaintext_refused),
        ROW("atls_protocol_errors_total", "counter", "pgwire protocol violations",
            protocol_errors),
        ROW("atls_backend_errors_total", "counter", "backend connect failures", backend_errors),
        ROW("atls_cancels_routed_total", "counter", "cancel requests forwarded",
            cancels_routed),
        ROW("atls_bytes_client_to_backend_total", "counter", "bytes received from clients",
            bytes_c2b),
        ROW("atls_bytes_backend_to_client_total", "counter", "bytes received from backends",
            bytes_b2c),
        ROW("atls_timeouts_total", "counter", "handshake and idle timeouts", timeouts),
        ROW("atls_attestations_allowed_total", "counter", "attestations verified and allowed",
            attest_ok),
        ROW("atls_attestations_reused_total", "counter", "admitted on a cached verdict",
            attest_reused),
        ROW("atls_attestations_denied_total", "counter", "sessions denied by attestation",
            attest_denied),
#undef ROW
    };
    static _Thread_local char buf[API_BODY_MAX];
    size_t at = 0;
    for (size_t i = 0; i < ARRAY_LEN(rows) && at < sizeof(buf); i++) {
        int n = snprintf(buf + at, sizeof(buf) - at, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n",
                         rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                         (unsigned long long)sum(proc, rows[i].offset));
        if (n < 0) {
            break;
        }
        at += (size_t)n;
    }
    if (proc->nonces != NULL && at < sizeof(buf)) {
        struct policy_nonce_stats st;
        policy_nonce_get_stats(proc->nonces, &st);
        int n = snprintf(buf + at, sizeof(buf) - at,
                         "# HELP atls_nonces_live nonces issued and not yet expired\n"
                         "# TYPE atls_nonces_live gauge\natls_nonces_live %llu\n"
                         "# HELP atls_nonces_capacity nonce table slots\n"
                         "# TYPE atls_nonces_capacity gauge\natls_nonces_capacity %llu\n",
                         (unsigned long long)st.live, (unsigned long long)st.capacity);
        if (n > 0) {
            at += (size_t)n;
        }
    }
    if (at > sizeof(buf)) {
        at = sizeof(buf);
    }
    return respond(conn, 200, buf, at, "text/plain; version=0.0.4");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
    struct core_proc *proc = cls;
    (void)version;
    (void)upload;
    if (*state == NULL) { // first call: headers only
        static int marker;
        *state = &marker;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0; // no endpoint takes a body: discard it, answer 405 below
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return respond_text(conn, 405, "only GET is supported\n");
    }
    if (strcmp(url, "/api/v1/nonce") == 0) {
        return api_nonce(proc, conn);
    }
    if (strcmp(url, "/healthz") == 0) {
        return api_health(proc, conn, false);
    }
    if (strcmp(url, "/readyz") == 0) {
        return api_health(proc, conn, true);
    }
    if (strcmp(url, "/metrics") == 0) {
        return api_metrics(proc, conn);
    }
    return respond_text(conn, 404, "no such path\n");
}

int core_api_start(struct core_proc *proc, char *err, size_t err_len) {
    if (!proc->cfg.api_enabled) {
        return 0;
    }
    const struct core_addr *a = &proc->cfg.api_listen;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    if (a->ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, proc, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
        MHD_OPTION_END);
    if (d == NULL) {
        snprintf(err, err_len, "%s: [api] listen %s: cannot bind", proc->cfg.path, a->text);
        return -EADDRINUSE;
    }
    proc->api = d;
    return 0;
}

void core_api_stop(struct core_proc *proc) {
    if (proc->api != NULL) {
        MHD_stop_daemon(proc->api);
        proc->api = NULL;
    }
}
