// core_api.c: the HTTP API on the control thread (libmicrohttpd's internal polling thread),
// DESIGN.md §10. Every answer is a proto/api.proto message, protobuf or JSON with the same
// fields (one reflective encoder, proto_json_encode). Protobuf is the default, except for
// GET /api/v1/nonce whose default is JSON (issue #4: `curl .../nonce` must be readable).
// `?format=json|protobuf` or `Accept: application/json|application/x-protobuf` choose.
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

#include "api.pb-c.h"
#include "core_internal.h"
#include "policy.h"
#include "proto.h"

#define API_CONNECTIONS_MAX 256u
#define API_CONNECTIONS_PER_ADDRESS 32u // of those, from one client address
#define API_LIST_DEFAULT 50u
#define API_LIST_MAX 1000u
#define API_RECENT_DEFAULT 20u
#define API_DENIED_DEFAULT 50u
#define API_ACTIVE_MAX 100000u
// Past three quarters full, an address holds at most 1/API_NONCE_SHARE_DIVISOR of the free
// nonce slots (at least API_NONCE_SHARE_MIN): nonce_share_exceeded.
#define API_NONCE_SHARE_DIVISOR 32u
#define API_NONCE_SHARE_MIN 4u
#define API_MEASUREMENTS_MAX 4096u
#define API_RESPONSE_MAX (64u * 1024u * 1024u)
#define API_SNAPSHOT_WAIT_MS 1000
// Answers queued and not yet taken by their clients, all connections together: a client that
// asks for large pages and never reads them makes libmicrohttpd hold each one (up to ~20 MB for
// 1,000 JSON records). Past this, a large answer is refused with 503 until some are sent.
#define API_HELD_MAX (64u * 1024u * 1024u)
#define API_HELD_SMALL 16384u // answers this small are always given (errors, health, nonces)

// struct api_state: one request's state across libmicrohttpd's calls (its con_cls).
struct api_state {
    bool body_seen; // a body came with the request (discarded)
    size_t held;    // bytes of its queued answer counted in api_held_bytes
};

extern const unsigned char core_dashboard_html[];
extern const size_t core_dashboard_html_len;

enum api_format { API_PROTOBUF = 0, API_JSON = 1 };

// ---------------------------------------------------------------------------------------------
// Responses.

struct api_req {
    struct core_proc *proc;
    struct MHD_Connection *conn;
    enum api_format format;
    char bad_param[160]; // set when a query parameter is not allowed
    const char *const *allowed;
    bool csp;          // the dashboard page: add a Content-Security-Policy
    const char *allow; // a 405: the methods the path takes (the Allow header)
    struct api_state *state;
};

// list_has reports whether the comma- (or space-) separated `list` holds the `len` bytes at
// `item` as one entry: byte for byte, or ignoring ASCII case when `fold`. An empty item is in
// no list.
static bool list_has(const char *list, const char *item, size_t len, bool fold) {
    for (const char *p = list; len > 0 && *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        const char *e = p;
        while (*e != '\0' && *e != ',' && *e != ' ') {
            e++;
        }
        if ((size_t)(e - p) == len &&
            (fold ? strncasecmp(p, item, len) == 0 : memcmp(p, item, len) == 0)) {
            return true;
        }
        p = e;
    }
    return false;
}

// host_allowed reports whether a request's Host header names this API: an IPv4 or bracketed
// IPv6 literal, localhost, or a name listed in [api] allow_hosts (ASCII case ignored, one
// trailing dot ignored, the port never checked). A request without Host (HTTP/1.0) is allowed:
// browsers always send one. This is the defence against DNS rebinding, where a page from a name
// the attacker controls, re-resolved to this API's address, would otherwise read it as its own
// origin: the browser then sends that name as Host.
static bool host_allowed(const char *host, const char *allow) {
    if (host == NULL) {
        return true;
    }
    char name[256];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof(name)) {
        return false;
    }
    if (host[0] == '[') { // [v6] or [v6]:port
        const char *close = strchr(host, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            return false;
        }
        n = (size_t)(close - host - 1);
        memcpy(name, host + 1, n);
        name[n] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    const char *colon = strchr(host, ':');
    if (colon != NULL) {
        if (strchr(colon + 1, ':') != NULL) {
            return false; // an unbracketed IPv6 literal is not a valid Host
        }
        n = (size_t)(colon - host);
    }
    memcpy(name, host, n);
    name[n] = '\0';
    if (n > 1 && name[n - 1] == '.') {
        name[--n] = '\0';
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0) {
        return true;
    }
    return list_has(allow, name, n, true);
}

static enum MHD_Result respond(struct api_req *rq, unsigned status, void *body, size_t len,
                               const char *type, enum MHD_ResponseMemoryMode mode) {
    if (len > API_HELD_SMALL && mode != MHD_RESPMEM_PERSISTENT) {
        if (rq->proc->api_held_bytes + len > API_HELD_MAX) {
            if (mode == MHD_RESPMEM_MUST_FREE) {
                free(body);
            }
            static const char busy[] = "the API is still sending earlier large answers; retry\n";
            return respond(rq, 503, (void *)busy, sizeof(busy) - 1, "text/plain; charset=utf-8",
                           MHD_RESPMEM_PERSISTENT);
        }
        rq->proc->api_held_bytes += len;
        rq->state->held += len;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (rq->allow != NULL) {
        MHD_add_response_header(r, "Allow", rq->allow);
    }
    if (rq->csp) {
        // The page is self-contained (inline script and style, SVG); it may read this and the
        // peer gateways' APIs, and nothing may frame it.
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; img-src data:; "
                                "connect-src 'self' http: https:; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'none'");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
    const char *origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
    const char *allow = rq->proc->cfg.api_allow_origin;
    // Exact match against the configured list (no wildcard for audit data).
    if (origin != NULL && list_has(allow, origin, strlen(origin), false)) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
    enum MHD_Result ret = MHD_queue_response(rq->conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct api_req *rq, unsigned status, const char *text) {
    return respond(rq, status, (void *)text, strlen(text), "text/plain; charset=utf-8",
                   MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result respond_msg(struct api_req *rq, unsigned status,
                                   const ProtobufCMessage *msg) {
    size_t packed = proto_packed_size(msg);
    if (rq->format == API_PROTOBUF) {
        uint8_t *buf = malloc(packed ? packed : 1);
        size_t len = 0;
        if (buf == NULL || proto_pack(buf, &len, packed, msg) != 0) {
            free(buf);
            return respond_text(rq, 500, "cannot encode the response\n");
        }
        return respond(rq, status, buf, len, "application/x-protobuf", MHD_RESPMEM_MUST_FREE);
    }
    // JSON: bytes double as hex, numbers grow as text, names add to every field.
    size_t cap = packed * 3u + 4096u;
    for (;;) {
        char *buf = malloc(cap + 1);
        if (buf == NULL) {
            return respond_text(rq, 500, "out of memory\n");
        }
        size_t len = 0;
        int ret = proto_json_encode(buf, &len, cap, msg);
        if (ret == 0) {
            buf[len++] = '\n';
            return respond(rq, status, buf, len, "application/json", MHD_RESPMEM_MUST_FREE);
        }
        free(buf);
        if (ret != -ENOSPC || cap > API_RESPONSE_MAX) {
            return respond_text(rq, 500, "cannot encode the response\n");
        }
        cap *= 2u;
    }
}

static enum MHD_Result respond_error(struct api_req *rq, unsigned status, const char *reason) {
    Atls__ErrorResponse e = ATLS__ERROR_RESPONSE__INIT;
    e.status = status;
    e.error = (char *)reason;
    return respond_msg(rq, status, &e.base);
}

// ---------------------------------------------------------------------------------------------
// Query parameters: every endpoint names the ones it takes; anything else is a 400.

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    struct api_req *rq = cls;
    (void)kind;
    if (value == NULL && rq->bad_param[0] == '\0' &&
        (rq->allowed == NULL || strcmp(rq->allowed[0], "*") != 0)) {
        // "?limit" without "=": not the same as leaving it out.
        snprintf(rq->bad_param, sizeof(rq->bad_param), "query parameter '%.64s' has no value", key);
        return MHD_YES;
    }
    if (strcmp(key, "format") == 0) {
        return MHD_YES;
    }
    for (const char *const *a = rq->allowed; a != NULL && *a != NULL; a++) {
        if (strcmp(*a, key) == 0 || strcmp(*a, "*") == 0) {
            return MHD_YES;
        }
    }
    if (rq->bad_param[0] == '\0') {
        snprintf(rq->bad_param, sizeof(rq->bad_param), "unknown query parameter '%.64s'", key);
    }
    return MHD_YES;
}

// negotiate picks the format and checks the parameter names. Returns false after answering 400.
static bool negotiate(struct api_req *rq, enum api_format dflt, const char *const *allowed,
                      enum MHD_Result *out) {
    rq->format = dflt;
    switch (
        core_api_parse_accept(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Accept"))) {
    case CORE_API_ACCEPT_JSON:
        rq->format = API_JSON;
        break;
    case CORE_API_ACCEPT_PROTOBUF:
        rq->format = API_PROTOBUF;
        break;
    case CORE_API_ACCEPT_EITHER:
        break;
    }
    const char *fmt = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "format");
    if (fmt != NULL) {
        if (strcmp(fmt, "json") == 0) {
            rq->format = API_JSON;
        } else if (strcmp(fmt, "protobuf") == 0) {
            rq->format = API_PROTOBUF;
        } else {
            rq->format = API_JSON; // the error itself must be readable
            *out = respond_error(rq, 400, "format must be json or protobuf");
            return false;
        }
    }
    rq->allowed = allowed;
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, check_param, rq);
    if (rq->bad_param[0] != '\0') {
        *out = respond_error(rq, 400, rq->bad_param);
        return false;
    }
    return true;
}

static const char *arg(struct api_req *rq, const char *name) {
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

// get_limit reads ?limit= (default `dflt`, 1..max). False after answering 400.
static bool get_limit(struct api_req *rq, uint32_t *out, uint32_t dflt, uint32_t max,
                      enum MHD_Result *res) {
    const char *t = arg(rq, "limit");
    *out = dflt;
    if (t == NULL) {
        return true;
    }
    if (core_api_parse_limit(out, t, max) != 0) {
        char why[96];
        snprintf(why, sizeof(why), "limit must be an integer in 1..%u", max);
        *res = respond_error(rq, 400, why);
        return false;
    }
    return true;
}

static bool need_store(struct api_req *rq, enum MHD_Result *res) {
    if (rq->proc->store != NULL) {
        return true;
    }
    *res = respond_error(rq, 404, "the audit trail is disabled on this gateway ([audit] enabled)");
    return false;
}

// ---------------------------------------------------------------------------------------------
// Counters.

static uint64_t sum_at(const struct core_proc *proc, size_t offset) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        const atomic_uint_fast64_t *a =
            (const atomic_uint_fast64_t *)((const uint8_t *)&proc->shards[i].counters + offset);
        total += atomic_load_explicit(a, memory_order_relaxed);
    }
    return total;
}
#define SUM(proc, field) sum_at((proc), offsetof(struct core_counters, field))

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

static uint64_t audit_queue_depth(const struct core_proc *proc) {
    if (proc->store == NULL) {
        return 0;
    }
    uint64_t depth = 0;
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        uint64_t pushed =
            atomic_load_explicit(&proc->shards[i].counters.audit_pushed, memory_order_relaxed);
        uint64_t durable = store_durable_seq(proc->store, i);
        depth += pushed > durable ? pushed - durable : 0;
    }
    return depth;
}

// policy_hold returns the current policy (NULL when not attesting) after publishing it as the
// API thread's hazard, so the main thread does not free it while this request reads it; call
// policy_release when done. WARNING: one hazard slot, so one thread: libmicrohttpd runs every
// request on its one internal polling thread (core_api_start uses no thread pool).
static const struct core_policy *policy_hold(struct core_proc *proc) {
    const struct core_policy *p = atomic_load(&proc->policy);
    for (;;) {
        atomic_store(&proc->policy_api_hazard, p);
        // Still current after the hazard is visible: a reclaim that runs from now on sees it.
        const struct core_policy *again = atomic_load(&proc->policy);
        if (again == p) {
            return p;
        }
        p = again;
    }
}

static void policy_release(struct core_proc *proc) {
    atomic_store(&proc->policy_api_hazard, NULL);
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

// nonce_stats reads the nonce table's counters into `st`. Expired nonces leave the counters only
// when their slot is reclaimed: the table is swept (one pass) first, at most once a second. The
// control thread is the only caller (one libmicrohttpd polling thread).
static void nonce_stats(struct core_proc *proc, uint64_t now, struct policy_nonce_stats *st) {
    static uint64_t last_sweep_ns;
    if (now - last_sweep_ns >= 1000000000ull) {
        (void)policy_nonce_sweep(proc->nonces, now);
        last_sweep_ns = now;
    }
    policy_nonce_get_stats(proc->nonces, st);
}

// nonce_share_exceeded: the table is at least three quarters full of nonces (issued or consumed,
// not expired) and `addr` holds its share of what is left free, 1/API_NONCE_SHARE_DIVISOR of the
// free slots (at least API_NONCE_SHARE_MIN), or more. Below that any address may take what its
// rate allows; past it the share shrinks with the free space, so that no address takes the rest
// alone and busy clients slow down gradually instead of all at once (DESIGN §6: issuing fails
// with 503 once full, and never evicts a live nonce). The counters are read first: the table is
// swept (nonce_stats) only when they say it is that full, since unswept counters only overcount.
static uint64_t nonce_slots_used(const struct policy_nonce_stats *st) {
    return st->live + st->consumed_held;
}

static bool nonce_table_crowded(const struct policy_nonce_stats *st) {
    return nonce_slots_used(st) * 4 >= st->capacity * 3;
}

static bool nonce_share_exceeded(struct core_proc *proc, const struct sockaddr *addr, uint64_t now,
                                 uint64_t ttl_ns, uint32_t *out_held) {
    struct policy_nonce_stats st;
    *out_held = 0;
    policy_nonce_get_stats(proc->nonces, &st);
    if (!nonce_table_crowded(&st)) {
        return false;
    }
    nonce_stats(proc, now, &st);
    if (!nonce_table_crowded(&st)) {
        return false;
    }
    uint64_t used = nonce_slots_used(&st);
    uint64_t free_slots = used < st.capacity ? st.capacity - used : 0;
    uint64_t share = free_slots / API_NONCE_SHARE_DIVISOR;
    share = share < API_NONCE_SHARE_MIN ? API_NONCE_SHARE_MIN : share;
    *out_held = policy_ratelimit_held(proc->nonce_limiter, addr, now, ttl_ns);
    return *out_held >= share;
}

static enum MHD_Result api_nonce(struct api_req *rq) {
    struct core_proc *proc = rq->proc;
    const struct core_policy *cp = policy_hold(proc);
    uint32_t ttl = cp != NULL ? cp->policy.nonce.ttl_s : 0;
    policy_release(proc);
    if (cp == NULL || proc->nonces == NULL) {
        return respond_error(rq, 404, "nonces are issued only when [attestation] required");
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = ci != NULL ? ci->client_addr : NULL; // NULL: not limited
    uint64_t now = core_base_now_ns();
    if (addr != NULL &&
        policy_ratelimit_take(proc->nonce_limiter, addr, now) != POLICY_RATELIMIT_ALLOW) {
        return respond_error(rq, 429, "too many nonce requests from this address");
    }
    uint64_t ttl_ns = (uint64_t)ttl * 1000000000ull;
    uint32_t held = 0;
    if (addr != NULL && nonce_share_exceeded(proc, addr, now, ttl_ns, &held)) {
        proc->nonce_share_refused++;
        char why[160];
        snprintf(why, sizeof(why),
                 "this address holds %u live nonces and the nonce table is over three quarters "
                 "full; retry later",
                 held);
        return respond_error(rq, 429, why);
    }
    uint8_t nonce[32];
    int ret = policy_nonce_issue(proc->nonces, nonce, now, ttl_ns);
    if (ret == -ENOSPC) {
        return respond_error(rq, 503, "nonce table full of live nonces; retry later");
    }
    if (ret != 0) {
        return respond_error(rq, 500, "cannot issue a nonce");
    }
    if (addr != NULL) {
        policy_ratelimit_held_add(proc->nonce_limiter, addr, now, ttl_ns);
    }
    char hex[65];
    core_base_hex_encode(hex, nonce, sizeof(nonce));
    Atls__NonceResponse msg = ATLS__NONCE_RESPONSE__INIT;
    msg.nonce = hex;
    msg.expires_in = ttl;
    msg.timestamp = core_base_wall_ns() / 1000000000ull;
    return respond_msg(rq, 200, &msg.base);
}

static enum MHD_Result api_health(struct api_req *rq, bool readiness) {
    struct core_proc *proc = rq->proc;
    Atls__Health msg = ATLS__HEALTH__INIT;
    char why[192] = "";
    msg.live = true;
    msg.backends_total = proc->cfg.backend_count;
    msg.backends_up = backends_up(proc);
    msg.store_healthy = proc->store == NULL || store_is_healthy(proc->store);
    bool draining = atomic_load(&proc->draining);
    if (draining) {
        snprintf(why, sizeof(why), "draining");
    } else if (!msg.store_healthy) {
        char err[128];
        (void)store_health_error(proc->store, err, sizeof(err));
        snprintf(why, sizeof(why), "audit store failed: %s", err);
    } else if (msg.backends_up == 0) {
        snprintf(why, sizeof(why), "no backend reachable");
    }
    msg.ready = why[0] == '\0';
    msg.reason = why;
    unsigned status = (!readiness || msg.ready) ? 200 : 503;
    return respond_msg(rq, status, &msg.base);
}

static enum MHD_Result api_overview(struct api_req *rq) {
    struct core_proc *proc = rq->proc;
    Atls__StatsOverview m = ATLS__STATS_OVERVIEW__INIT;
    m.node_id = proc->cfg.node_id;
    m.allowed = SUM(proc, decisions_allowed);
    m.warned = SUM(proc, decisions_warned);
    m.denied = SUM(proc, decisions_denied);
    m.active_connections = SUM(proc, active);
    m.uptime_s = (core_base_now_ns() - proc->started_ns) / 1000000000ull;
    m.handshakes_total = SUM(proc, handshakes_ok) + SUM(proc, handshakes_failed);
    m.refused_audit_full = SUM(proc, audit_refused);
    m.workers = proc->worker_count;
    m.store_healthy = proc->store == NULL || store_is_healthy(proc->store);
    char version[policy_version_max_bytes];
    const struct core_policy *cp = policy_hold(proc);
    snprintf(version, sizeof(version), "%s", cp != NULL ? cp->policy.version : "mtls");
    policy_release(proc);
    m.policy_version = version;
    return respond_msg(rq, 200, &m.base);
}

// A page of records collected from a store query, unpacked into one arena.
struct collect {
    struct proto_arena arena;
    uint8_t *mem;
    Atls__AuditRecord **recs;
    size_t n;
    size_t cap;
    uint32_t unreadable; // records that did not decode, left out of the page
    bool failed;
};

static int collect_init(struct collect *col, uint32_t limit) {
    memset(col, 0, sizeof(*col));
    size_t per = (size_t)STORE_VALUE_BYTES_MAX * 2u + 2048u;
    col->mem = malloc(per * limit);
    col->recs = calloc(limit, sizeof(*col->recs));
    if (col->mem == NULL || col->recs == NULL) {
        free(col->mem);
        free(col->recs);
        return -ENOMEM;
    }
    proto_arena_init(&col->arena, col->mem, per * limit);
    col->cap = limit;
    return 0;
}

static void collect_free(struct collect *col) {
    free(col->mem);
    free(col->recs);
}

static int collect_one(void *arg, const struct store_key *key, const uint8_t *value, size_t len) {
    struct collect *col = arg;
    (void)key;
    if (col->n >= col->cap) {
        return 1;
    }
    ProtobufCMessage *m = NULL;
    size_t mark = col->arena.used;
    int rc = proto_unpack(&col->arena, &m, &atls__audit_record__descriptor, value, len);
    if (rc == -EBADMSG) {
        // A damaged record: the page serves the others and says how many it left out (the
        // chain check, `atlsctl audit verify`, names it), rather than failing whole.
        col->arena.used = mark; // what the failed decode took
        col->unreadable++;
        return 0;
    }
    if (rc != 0) {
        col->failed = true;
        return rc;
    }
    col->recs[col->n++] = (Atls__AuditRecord *)m;
    return 0;
}

static enum MHD_Result answer_records(struct api_req *rq, struct collect *col, int ret,
                                      const char *next_cursor, bool denied_shape) {
    enum MHD_Result r;
    static uint64_t unreadable_logged_ns; // the API thread's
    if (col->unreadable > 0 && core_base_log_due(&unreadable_logged_ns)) {
        LOG_WARN("api: %u stored audit records do not decode and were left out of a page; run "
                 "atlsctl audit verify",
                 col->unreadable);
    }
    if (ret != 0) {
        r = respond_error(rq, ret == -EINVAL ? 400 : 500,
                          ret == -EINVAL ? "bad cursor" : "audit store read failed");
    } else if (denied_shape) {
        Atls__DeniedClients m = ATLS__DENIED_CLIENTS__INIT;
        m.n_records = col->n;
        m.records = col->recs;
        m.unreadable = col->unreadable;
        r = respond_msg(rq, 200, &m.base);
    } else {
        Atls__AttestationList m = ATLS__ATTESTATION_LIST__INIT;
        m.n_records = col->n;
        m.records = col->recs;
        m.unreadable = col->unreadable;
        m.next_cursor = (char *)(next_cursor != NULL ? next_cursor : "");
        r = respond_msg(rq, 200, &m.base);
    }
    collect_free(col);
    return r;
}

static enum MHD_Result api_attestations(struct api_req *rq) {
    static const char *const allowed[] = {"limit", "since", "cursor", NULL};
    enum MHD_Result res;
    if (!negotiate(rq, API_PROTOBUF, allowed, &res) || !need_store(rq, &res)) {
        return res;
    }
    struct store_list_query q;
    memset(&q, 0, sizeof(q));
    if (!get_limit(rq, &q.limit, API_LIST_DEFAULT, API_LIST_MAX, &res)) {
        return res;
    }
    const char *since = arg(rq, "since");
    if (since != NULL && core_api_parse_since(&q.since_ns, since) != 0) {
        return respond_error(rq, 400,
                             "since must be unix seconds or an RFC 3339 UTC time "
                             "(2026-11-22T10:00:00Z)");
    }
    const char *cursor = arg(rq, "cursor");
    if (cursor != NULL) {
        struct store_key k;
        if (strlen(cursor) >= sizeof(q.cursor) || store_key_parse(&k, cursor) != 0) {
            return respond_error(rq, 400, "cursor must be a next_cursor from a previous page");
        }
        memcpy(q.cursor, cursor, strlen(cursor) + 1);
    }
    struct collect col;
    if (collect_init(&col, q.limit) != 0) {
        return respond_error(rq, 500, "out of memory");
    }
    char next[STORE_CURSOR_BYTES] = "";
    int ret = store_query_list(rq->proc->store, next, &q, collect_one, &col);
    return answer_records(rq, &col, ret, next, false);
}

static enum MHD_Result api_recent(struct api_req *rq, bool denied) {
    static const char *const allowed[] = {"limit", NULL};
    enum MHD_Result res;
    if (!negotiate(rq, API_PROTOBUF, allowed, &res) || !need_store(rq, &res)) {
        return res;
    }
    uint32_t limit;
    if (!get_limit(rq, &limit, denied ? API_DENIED_DEFAULT : API_RECENT_DEFAULT, API_LIST_MAX,
                   &res)) {
        return res;
    }
    struct collect col;
    if (collect_init(&col, limit) != 0) {
        return respond_error(rq, 500, "out of memory");
    }
    int ret = denied ? store_query_denied(rq->proc->store, limit, collect_one, &col)
                     : store_query_latest(rq->proc->store, limit, collect_one, &col);
    return answer_records(rq, &col, ret, "", denied);
}

// measurement_admitted: whether a measurement has admitted decisions (allowed or warned), which
// only a report that verified can have; a denied one may carry any measurement a client chose.
static bool measurement_admitted(const struct store_measurement_count *m) {
    return m->by_verdict[ATLS__VERDICT__VERDICT_ALLOWED] +
               m->by_verdict[ATLS__VERDICT__VERDICT_WARNED] >
           0;
}

static int measurement_bytes_order(const void *a, const void *b) {
    const struct store_measurement_count *x = a;
    const struct store_measurement_count *y = b;
    return memcmp(x->measurement, y->measurement, sizeof(x->measurement));
}

// Admitted measurements first, each group by measurement bytes (the store's order).
static int measurement_admitted_first(const void *a, const void *b) {
    const struct store_measurement_count *x = a;
    const struct store_measurement_count *y = b;
    bool ax = measurement_admitted(x);
    bool ay = measurement_admitted(y);
    if (ax != ay) {
        return ax ? -1 : 1;
    }
    return measurement_bytes_order(a, b);
}

// api_measurements answers the decision counts per measurement. Past API_MEASUREMENTS_MAX it
// keeps every measurement with admitted decisions (among those counted in memory) before the
// others: denied handshakes can record any number of made-up measurements, which in byte order
// alone would push the real ones out of the answer. The answer lists them by measurement bytes.
static enum MHD_Result api_measurements(struct api_req *rq) {
    enum MHD_Result res;
    if (!negotiate(rq, API_PROTOBUF, NULL, &res) || !need_store(rq, &res)) {
        return res;
    }
    struct store_measurement_count *counts = calloc(STORE_COUNTS_ENTRIES_MAX, sizeof(*counts));
    Atls__MeasurementCount *items = calloc(API_MEASUREMENTS_MAX, sizeof(*items));
    Atls__MeasurementCount **ptrs = calloc(API_MEASUREMENTS_MAX, sizeof(*ptrs));
    if (counts == NULL || items == NULL || ptrs == NULL) {
        free(counts);
        free(items);
        free(ptrs);
        return respond_error(rq, 500, "out of memory");
    }
    // The answer is chosen among the measurements the store counts in memory, which costs no
    // index scan; only when those are fewer than a page (retention after the table overflowed)
    // is the page read exactly, the index past the table included.
    size_t n = 0;
    int ret = store_query_measurements_kept(rq->proc->store, counts, &n, STORE_COUNTS_ENTRIES_MAX);
    if (ret == -ENOSPC && n < API_MEASUREMENTS_MAX) {
        ret = store_query_measurements(rq->proc->store, counts, &n, API_MEASUREMENTS_MAX);
    }
    if (ret != 0 && ret != -ENOSPC) {
        res = respond_error(rq, 500, "audit store read failed");
    } else {
        bool truncated = ret == -ENOSPC || n > API_MEASUREMENTS_MAX;
        if (n > API_MEASUREMENTS_MAX) {
            qsort(counts, n, sizeof(*counts), measurement_admitted_first);
            n = API_MEASUREMENTS_MAX;
            qsort(counts, n, sizeof(*counts), measurement_bytes_order);
        }
        static const uint8_t zero[STORE_MEASUREMENT_BYTES];
        Atls__MeasurementStats m = ATLS__MEASUREMENT_STATS__INIT;
        for (size_t i = 0; i < n; i++) {
            Atls__MeasurementCount *it = &items[i];
            atls__measurement_count__init(it);
            bool none = memcmp(counts[i].measurement, zero, sizeof(zero)) == 0;
            it->measurement.data = counts[i].measurement;
            it->measurement.len = none ? 0 : sizeof(counts[i].measurement);
            it->allowed = counts[i].by_verdict[ATLS__VERDICT__VERDICT_ALLOWED];
            it->denied = counts[i].by_verdict[ATLS__VERDICT__VERDICT_DENIED];
            it->warned = counts[i].by_verdict[ATLS__VERDICT__VERDICT_WARNED];
            it->total = counts[i].total;
            it->other = it->total - it->allowed - it->denied - it->warned;
            m.total += it->total;
            ptrs[i] = it;
        }
        m.n_measurements = n;
        m.measurements = ptrs;
        m.truncated = truncated;
        res = respond_msg(rq, 200, &m.base);
    }
    free(counts);
    free(items);
    free(ptrs);
    return res;
}

// snapshot_request asks worker `shard` to copy its live sessions (with `sn->mu` held by the
// caller; snapshot_wait then waits for the answer). Returns the generation to wait for, 0 when the
// worker has stopped (it holds no session) or -ENOMEM.
static int64_t snapshot_request(struct core_shard *shard) {
    struct core_snapshot *sn = &shard->snap;
    if (sn->closed) {
        return 0;
    }
    if (sn->items == NULL) {
        sn->items = calloc(shard->conns_max, sizeof(*sn->items));
        if (sn->items == NULL) {
            return -ENOMEM;
        }
    }
    uint64_t gen = ++sn->requested;
    atomic_store_explicit(&sn->pending, true, memory_order_release);
    core_shard_wake(shard);
    return (int64_t)gen;
}

// snapshot_wait waits until `deadline` for the answer to request `gen` of snapshot_request.
// Returns the item count (items valid while `sn->mu` is held by the caller) or -ETIMEDOUT.
static int snapshot_wait(struct core_shard *shard, int64_t gen, const struct timespec *deadline) {
    struct core_snapshot *sn = &shard->snap;
    if (gen <= 0) {
        return gen == 0 ? 0 : (int)gen;
    }
    while (sn->answered < (uint64_t)gen && !sn->closed) {
        if (pthread_cond_timedwait(&sn->cv, &sn->mu, deadline) == ETIMEDOUT) {
            return -ETIMEDOUT;
        }
    }
    return sn->closed ? 0 : (int)sn->count;
}

static enum MHD_Result api_active(struct api_req *rq) {
    static const char *const allowed[] = {"limit", NULL};
    enum MHD_Result res;
    if (!negotiate(rq, API_PROTOBUF, allowed, &res)) {
        return res;
    }
    uint32_t limit;
    if (!get_limit(rq, &limit, API_ACTIVE_MAX, API_ACTIVE_MAX, &res)) {
        return res;
    }
    struct core_proc *proc = rq->proc;
    size_t cap = (size_t)proc->worker_count * proc->cfg.conns_max;
    if (cap > limit) {
        cap = limit;
    }
    struct core_active_item *all = calloc(cap ? cap : 1, sizeof(*all));
    Atls__ActiveClient *items = calloc(cap ? cap : 1, sizeof(*items));
    Atls__ActiveClient **ptrs = calloc(cap ? cap : 1, sizeof(*ptrs));
    if (all == NULL || items == NULL || ptrs == NULL) {
        free(all);
        free(items);
        free(ptrs);
        return respond_error(rq, 500, "out of memory");
    }
    size_t n = 0;
    bool partial = false;
    bool truncated = false;
    // Every worker is asked first, then each answer awaited against one deadline: a worker that
    // does not answer costs the request API_SNAPSHOT_WAIT_MS once, not once per worker. No lock is
    // held across workers: a worker answering takes its own, and must never wait for another's.
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)API_SNAPSHOT_WAIT_MS * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    int64_t *gens = calloc(proc->worker_count, sizeof(*gens));
    if (gens == NULL) {
        free(all);
        free(items);
        free(ptrs);
        return respond_error(rq, 500, "out of memory");
    }
    for (uint32_t w = 0; w < proc->worker_count; w++) {
        pthread_mutex_lock(&proc->shards[w].snap.mu);
        gens[w] = snapshot_request(&proc->shards[w]);
        pthread_mutex_unlock(&proc->shards[w].snap.mu);
    }
    for (uint32_t w = 0; w < proc->worker_count; w++) {
        struct core_shard *shard = &proc->shards[w];
        pthread_mutex_lock(&shard->snap.mu);
        int got = snapshot_wait(shard, gens[w], &dl);
        if (got < 0) {
            partial = true;
        }
        for (int i = 0; i < got; i++) {
            if (n == cap) {
                truncated = true;
                break;
            }
            all[n++] = shard->snap.items[i];
        }
        pthread_mutex_unlock(&shard->snap.mu);
    }
    free(gens);
    if (partial && !atomic_load(&proc->draining)) {
        LOG_WARN("api: a worker did not answer the active-sessions snapshot in time");
    }
    Atls__ActiveClients m = ATLS__ACTIVE_CLIENTS__INIT;
    for (size_t i = 0; i < n; i++) {
        Atls__ActiveClient *it = &items[i];
        atls__active_client__init(it);
        it->worker = all[i].worker;
        it->conn_id = all[i].conn_id;
        it->client_addr = all[i].addr;
        it->client_port = all[i].port;
        if (all[i].have_measurement) {
            it->measurement.data = all[i].measurement;
            it->measurement.len = sizeof(all[i].measurement);
        }
        it->db_user = all[i].user;
        it->db_name = all[i].database;
        it->since_ns = all[i].since_ns;
        it->bytes_client_to_backend = all[i].bytes_c2b;
        it->bytes_backend_to_client = all[i].bytes_b2c;
        it->decision_seq = all[i].decision_seq;
        ptrs[i] = it;
    }
    m.n_clients = n;
    m.clients = ptrs;
    m.truncated = truncated;
    m.partial = partial;
    res = respond_msg(rq, 200, &m.base);
    free(all);
    free(items);
    free(ptrs);
    return res;
}

// A growing text buffer for /metrics.
struct text {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t, const char *fmt, ...) {
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2u;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

// metrics_backends writes each backend's state and health checks, labelled with its address as
// the config gives it.
static void metrics_backends(struct text *t, const struct core_proc *proc) {
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"atls_backend_up", "gauge",
         "1 while the backend is in rotation, 0 while it is marked down (by health checks or "
         "by sessions it failed)"},
        {"atls_backend_health_checks_total", "counter", "active health checks of the backend"},
        {"atls_backend_health_checks_failed_total", "counter", "of those, failed"},
    };
    uint64_t now = core_base_now_ns();
    for (size_t f = 0; f < ARRAY_LEN(fam); f++) {
        text_add(t, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                 fam[f].type);
        for (uint32_t i = 0; i < proc->cfg.backend_count; i++) {
            const struct core_backend_state *b = &proc->backends[i];
            uint64_t v;
            if (f == 0) {
                v = atomic_load_explicit(&b->down_until, memory_order_relaxed) <= now;
            } else if (f == 1) {
                v = atomic_load_explicit(&b->probes, memory_order_relaxed);
            } else {
                v = atomic_load_explicit(&b->probes_failed, memory_order_relaxed);
            }
            // A label value escapes backslash, double quote and newline; an address holds
            // none of them, but the config is not ours to trust here.
            char label[2 * CORE_NAME_MAX];
            size_t o = 0;
            for (const char *c = proc->cfg.backends[i].text; *c != '\0' && o + 2 < sizeof(label);
                 c++) {
                if (*c == '\\' || *c == '"' || *c == '\n') {
                    label[o++] = '\\';
                }
                label[o++] = *c == '\n' ? 'n' : *c;
            }
            label[o] = '\0';
            text_add(t, "%s{backend=\"%s\"} %llu\n", fam[f].name, label, (unsigned long long)v);
        }
    }
}

static void metrics_hist(struct text *t, const struct core_proc *proc, size_t offset,
                         const char *name, const char *help) {
    text_add(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (uint32_t b = 0; b < CORE_HIST_BUCKETS; b++) {
        cum += sum_at(proc, offset + offsetof(struct core_hist, bucket) +
                                b * sizeof(atomic_uint_fast64_t));
        if (b < CORE_HIST_BUCKETS - 1) {
            text_add(t, "%s_bucket{le=\"%g\"} %llu\n", name,
                     (double)core_hist_bounds_us[b] / 1e6, (unsigned long long)cum);
        } else {
            text_add(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        }
    }
    uint64_t sum_us = sum_at(proc, offset + offsetof(struct core_hist, sum_us));
    text_add(t, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name,
             (unsigned long long)sum_at(proc, offset + offsetof(struct core_hist, count)));
}

static enum MHD_Result api_metrics(struct api_req *rq) {
    struct core_proc *proc = rq->proc;
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
        ROW("atls_connections_refused_nofile_total", "counter",
            "accepts failed: out of file descriptors", refused_nofile),
        ROW("atls_connections_refused_audit_busy_total", "counter",
            "closed at accept: the worker's audit ring had no slot for another decision",
            refused_audit_busy),
        ROW("atls_connections_active", "gauge", "connections holding a slot", active),
        ROW("atls_handshakes_ok_total", "counter", "TLS handshakes completed", handshakes_ok),
        ROW("atls_handshakes_failed_total", "counter", "TLS handshakes failed",
            handshakes_failed),
        ROW("atls_handshake_steps_offloaded_total", "counter",
            "TLS handshake steps run on the workers' handshake threads", hs_steps_offloaded),
        ROW("atls_handshake_thread_raised_total", "counter",
            "handshake threads raised to normal priority after a step waited 20 ms",
            hs_thread_raised),
        ROW("atls_handshake_steps_in_flight", "gauge",
            "handshake steps handed to the handshake threads and not yet taken back",
            hs_steps_away),
        ROW("atls_workers_realtime", "gauge",
            "workers running SCHED_FIFO now ([proxy] worker_priority = realtime)",
            workers_realtime),
        ROW("atls_worker_realtime_dropped_total", "counter",
            "times a worker used 80% of its CPU and went back to normal priority",
            worker_rt_dropped),
        ROW("atls_busy_poll_hits_total", "counter",
            "worker busy polls ([proxy] busy_poll_us) that found a completion: no sleep",
            busy_poll_hits),
        ROW("atls_busy_poll_misses_total", "counter",
            "worker busy polls that found nothing and slept", busy_poll_misses),
        ROW("atls_busy_poll_microseconds_total", "counter", "time the workers spent in busy polls",
            busy_poll_us),
        ROW("atls_plaintext_refused_total", "counter", "clients refused for not using TLS",
            plaintext_refused),
        ROW("atls_protocol_errors_total", "counter", "pgwire protocol violations",
            protocol_errors),
        ROW("atls_receive_buffers_exhausted_total", "counter",
            "receives that found their worker's receive buffers all held and waited for some",
            recv_starved),
        ROW("atls_receive_buffers_in_use", "gauge",
            "receive buffers (256 KiB, 64 per worker) held by connections, as of the last tick",
            recv_bufs_in_use),
        ROW("atls_backend_errors_total", "counter", "backend connect failures", backend_errors),
        ROW("atls_backend_session_retries_total", "counter",
            "starting sessions moved to another backend after theirs refused them (57P01..57P03) "
            "or closed without a byte",
            backend_retries),
        ROW("atls_cancels_routed_total", "counter", "cancel requests forwarded",
            cancels_routed),
        ROW("atls_cancels_cross_worker_total", "counter",
            "cancel requests handed over by the worker that accepted them (IORING_OP_MSG_RING)",
            cancels_cross_worker),
        ROW("atls_bytes_client_to_backend_total", "counter", "bytes received from clients",
            bytes_c2b),
        ROW("atls_bytes_backend_to_client_total", "counter", "bytes received from backends",
            bytes_b2c),
        ROW("atls_timeouts_total", "counter", "handshake and idle timeouts", timeouts),
        ROW("atls_attestations_allowed_total", "counter", "attestations verified and allowed",
            attest_ok),
        ROW("atls_attestations_reused_total", "counter", "admitted on a cached verdict",
            attest_reused),
        ROW("atls_attestation_verifications_total", "counter",
            "full evidence verifications run (report signature and chain)", verifications),
        ROW("atls_attestations_denied_total", "counter", "sessions denied by attestation",
            attest_denied),
        ROW("atls_client_cert_verifications_total", "counter",
            "mutual TLS: client chains verified in full against [tls] client_ca",
            client_cert_verifications),
        ROW("atls_client_cert_cache_hits_total", "counter",
            "mutual TLS: client chains accepted from the cache of chains that verified "
            "(the handshake still proves possession of the key)",
            client_cert_cache_hits),
        ROW("atls_audit_refused_total", "counter",
            "sessions refused because the audit trail could not record them", audit_refused),
        ROW("atls_audit_lost_total", "counter",
            "denial or disconnect records that could not be queued", audit_lost),
#undef ROW
    };
    struct text t = {.p = malloc(8192), .cap = 8192};
    if (t.p == NULL) {
        return respond_text(rq, 500, "out of memory\n");
    }
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        text_add(&t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", rows[i].name, rows[i].help,
                 rows[i].name, rows[i].type, rows[i].name,
                 (unsigned long long)sum_at(proc, rows[i].offset));
    }
    text_add(&t,
             "# HELP atls_decisions_total admission decisions by result\n"
             "# TYPE atls_decisions_total counter\n"
             "atls_decisions_total{result=\"allowed\"} %llu\n"
             "atls_decisions_total{result=\"warned\"} %llu\n"
             "atls_decisions_total{result=\"denied\"} %llu\n",
             (unsigned long long)SUM(proc, decisions_allowed),
             (unsigned long long)SUM(proc, decisions_warned),
             (unsigned long long)SUM(proc, decisions_denied));
    text_add(&t, "# HELP atls_handshakes_total TLS handshakes by result\n"
                 "# TYPE atls_handshakes_total counter\n"
                 "atls_handshakes_total{result=\"ok\"} %llu\n"
                 "atls_handshakes_total{result=\"failed\"} %llu\n",
             (unsigned long long)SUM(proc, handshakes_ok),
             (unsigned long long)SUM(proc, handshakes_failed));
    // Denials by reason: merge the per-worker tables by code.
    text_add(&t, "# HELP atls_denials_total sessions denied, by stable reason code\n"
                 "# TYPE atls_denials_total counter\n");
    const char *codes[CORE_DENY_CODES_MAX * 4];
    uint64_t counts[CORE_DENY_CODES_MAX * 4];
    size_t ncodes = 0;
    for (uint32_t w = 0; w < proc->worker_count; w++) {
        const struct core_deny_count *d = proc->shards[w].counters.deny;
        for (uint32_t i = 0; i < CORE_DENY_CODES_MAX; i++) {
            const char *code = atomic_load_explicit(&d[i].code, memory_order_acquire);
            if (code == NULL) {
                break;
            }
            uint64_t n = atomic_load_explicit(&d[i].n, memory_order_relaxed);
            size_t j = 0;
            while (j < ncodes && strcmp(codes[j], code) != 0) {
                j++;
            }
            if (j == ncodes) {
                if (ncodes == ARRAY_LEN(codes)) {
                    continue;
                }
                codes[ncodes] = code;
                counts[ncodes++] = 0;
            }
            counts[j] += n;
        }
    }
    for (size_t j = 0; j < ncodes; j++) {
        text_add(&t, "atls_denials_total{reason=\"%s\"} %llu\n", codes[j],
                 (unsigned long long)counts[j]);
    }
    metrics_backends(&t, proc);
    metrics_hist(&t, proc, offsetof(struct core_counters, handshake_hist),
                 "atls_handshake_seconds", "accept to TLS handshake completion");
    metrics_hist(&t, proc, offsetof(struct core_counters, verify_hist),
                 "atls_attestation_verify_seconds", "evidence verification and policy");
    if (proc->store != NULL) {
        struct store_stats st;
        store_stats(proc->store, &st);
        text_add(&t,
                 "# HELP atls_audit_queue_depth records queued and not yet durable\n"
                 "# TYPE atls_audit_queue_depth gauge\natls_audit_queue_depth %llu\n"
                 "# HELP atls_audit_records_written_total records made durable\n"
                 "# TYPE atls_audit_records_written_total counter\n"
                 "atls_audit_records_written_total %llu\n"
                 "# HELP atls_audit_ring_full_total pushes refused by a full ring\n"
                 "# TYPE atls_audit_ring_full_total counter\natls_audit_ring_full_total %llu\n"
                 "# HELP atls_audit_store_healthy 1 while the audit store writes\n"
                 "# TYPE atls_audit_store_healthy gauge\natls_audit_store_healthy %d\n"
                 "# HELP atls_audit_memtable_bytes memory held by the audit store's memtables\n"
                 "# TYPE atls_audit_memtable_bytes gauge\natls_audit_memtable_bytes %llu\n",
                 (unsigned long long)audit_queue_depth(proc),
                 (unsigned long long)st.records_written, (unsigned long long)st.ring_full,
                 store_is_healthy(proc->store) ? 1 : 0, (unsigned long long)st.memtable_bytes);
    }
    if (proc->nonces != NULL) {
        struct policy_nonce_stats st;
        nonce_stats(proc, core_base_now_ns(), &st);
        text_add(&t,
                 "# HELP atls_nonces_live nonces issued and not yet expired\n"
                 "# TYPE atls_nonces_live gauge\natls_nonces_live %llu\n"
                 "# HELP atls_nonces_capacity nonce table slots\n"
                 "# TYPE atls_nonces_capacity gauge\natls_nonces_capacity %llu\n"
                 "# HELP atls_nonce_share_refused_total nonce requests refused (429) because the "
                 "table was over three quarters full and the address held its share\n"
                 "# TYPE atls_nonce_share_refused_total counter\n"
                 "atls_nonce_share_refused_total %llu\n",
                 (unsigned long long)st.live, (unsigned long long)st.capacity,
                 (unsigned long long)proc->nonce_share_refused);
    }
    if (t.failed) {
        free(t.p);
        return respond_text(rq, 500, "out of memory\n");
    }
    return respond(rq, 200, t.p, t.len, "text/plain; version=0.0.4", MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
    struct api_req rq;
    memset(&rq, 0, sizeof(rq));
    rq.proc = cls;
    rq.conn = conn;
    rq.format = API_JSON;
    (void)version;
    (void)upload;
    // libmicrohttpd calls once with the headers, then once per piece of a body (no response may
    // be queued in those calls), then once more: the answer is given in that last call.
    if (*state == NULL) {
        *state = calloc(1, sizeof(struct api_state));
        return *state != NULL ? MHD_YES : MHD_NO; // freed by request_done
    }
    rq.state = *state;
    if (*upload_size != 0) {
        *upload_size = 0; // discarded: no endpoint takes a body
        rq.state->body_seen = true;
        return MHD_YES;
    }
    bool head = strcmp(method, "HEAD") == 0;
    // The nonce endpoint issues one per request: a HEAD would spend one without handing it out.
    bool nonce = strcmp(url, "/api/v1/nonce") == 0;
    if ((strcmp(method, "GET") != 0 && !head) || (head && nonce)) {
        rq.allow = nonce ? "GET" : "GET, HEAD";
        return respond_error(&rq, 405,
                             nonce ? "only GET is supported here" : "only GET is supported");
    }
    if (rq.state->body_seen) {
        return respond_error(&rq, 413, "GET requests take no body");
    }
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (!host_allowed(host, rq.proc->cfg.api_allow_hosts)) {
        return respond_error(&rq, 421,
                             "the Host header names no address of this API: use an IP address "
                             "or list the name in [api] allow_hosts");
    }
    enum MHD_Result res;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        rq.csp = true;
        return respond(&rq, 200, (void *)core_dashboard_html, core_dashboard_html_len,
                       "text/html; charset=utf-8", MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/api/v1/nonce") == 0) {
        return negotiate(&rq, API_JSON, NULL, &res) ? api_nonce(&rq) : res;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0) {
        return negotiate(&rq, API_PROTOBUF, NULL, &res) ? api_health(&rq, url[1] == 'r') : res;
    }
    if (strcmp(url, "/metrics") == 0) {
        return api_metrics(&rq);
    }
    if (strcmp(url, "/api/v1/stats/overview") == 0) {
        return negotiate(&rq, API_PROTOBUF, NULL, &res) ? api_overview(&rq) : res;
    }
    if (strcmp(url, "/api/v1/attestations") == 0) {
        return api_attestations(&rq);
    }
    if (strcmp(url, "/api/v1/attestations/recent") == 0) {
        return api_recent(&rq, false);
    }
    if (strcmp(url, "/api/v1/clients/denied") == 0) {
        return api_recent(&rq, true);
    }
    if (strcmp(url, "/api/v1/clients/active") == 0) {
        return api_active(&rq);
    }
    if (strcmp(url, "/api/v1/stats/measurements") == 0) {
        return api_measurements(&rq);
    }
    // An unknown path is a 404 whatever its query says (only a bad format is a 400).
    static const char *const any_param[] = {"*", NULL};
    if (!negotiate(&rq, API_PROTOBUF, any_param, &res)) {
        return res;
    }
    return respond_error(&rq, 404, "no such path");
}

// request_done: libmicrohttpd is finished with a request (its answer sent, or the connection
// gone): what its answer held is released.
static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode why) {
    struct core_proc *proc = cls;
    struct api_state *st = *state;
    (void)conn;
    (void)why;
    if (st != NULL) {
        ASSERT(proc->api_held_bytes >= st->held);
        proc->api_held_bytes -= st->held;
        free(st);
        *state = NULL;
    }
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
    // CONNECTION_MEMORY_LIMIT bounds a request's headers and URL: larger ones are refused by
    // libmicrohttpd (431/414) before our handler runs. PER_IP_CONNECTION_LIMIT keeps one address
    // from holding every connection (slow requests, up to the 10 s timeout each) and with them
    // the nonce API of every other client.
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, proc, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&a->ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_MAX,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_PER_ADDRESS,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
        MHD_OPTION_NOTIFY_COMPLETED, request_done, proc, MHD_OPTION_END);
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
