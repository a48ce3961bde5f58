// atls_bench.c: atls-bench, the load generator of the bench harness: scenarios handshake, bulk,
// query, idle and storm against a pgwire target (plaintext, or TLS 1.3 with a client certificate
// or per-connection attested certificates), one JSON object per run; `serve` runs the built-in
// pgwire backend. See bench/RESULTS.md for what each scenario times.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "atls_bench.h"

#define NS_PER_S 1000000000ull
#define OPEN_BURST_MAX 256u   // connections opening at once (idle, query, bulk set-up)
#define SETUP_TIMEOUT_S 60.0  // bound on connecting a scenario's persistent connections
#define BULK_HIGH_WATER_BYTES (128u * 1024u)
// Bulk upload: each CopyData message, header included, is one full TLS record's plaintext
// (16 KiB), so the client hands the proxy full records, as a client streaming a large COPY
// through a buffered TLS writer would; plaintext (direct) gets the same bytes.
#define COPY_MSG_BYTES (16u * 1024u)
#define COPY_MSG_DATA_BYTES (COPY_MSG_BYTES - 5u) // of the binary COPY stream per message
#define COPY_HEAD_BYTES 19u                       // the binary COPY file header
#define COPY_TUPLE_HEAD_BYTES 6u                  // int16 field count, int32 length

struct opts {
    const char *scenario;
    struct bench_target t;
    const char *cert, *key;
    const char *cert_pool;      // --cert-pool DIR: mTLS handshakes take its certificates in turn
    uint32_t cert_pool_start;   // --cert-pool-start N: ... starting with the N-th (mod its size)
    const char *proxy_api;      // --proxy-api H:P: the gateway's API, for its client-chain counters
    const char *proxy_priority; // --proxy-priority TEXT: recorded in the JSON as is
    const char *run_order;      // --run-order TEXT: recorded as is (run.sh: its group's order)
    struct bench_attest_opts at;
    bool attested;
    uint32_t conns;
    double duration_s;
    uint32_t count;
    int proxy_pid;
    const char *target_name;
    const char *label;
    const char *out;
    bool up;
    uint32_t row_bytes;
    uint64_t query_bytes;
    double hold_s;
    uint32_t storm_conns;
    bool storm_sched_idle; // the storm's thread runs SCHED_IDLE (--storm-sched idle)
    double probe_rate;     // storm/query: paced queries per second in all (0: closed loop)
    bool probe_fifo;       // the measured thread runs SCHED_FIFO (--probe-sched fifo)
    uint16_t storm_port;   // the storm goes to this port of the same host (0: the target's)
    const char *ready_cmd; // query/storm: run once every connection is open, before measuring
    const char *listen;
};

// --cert-pool: loaded once in main; handshake and storm connections use it round robin.
static struct bench_cert *g_pool;
static uint32_t g_pool_n;

static struct opts g_o = {
    .t = {.host = "127.0.0.1", .port = 5432, .tls = BENCH_TLS_NONE, .user = "postgres",
          .dbname = "postgres"},
    .at = {.api = "127.0.0.1:8081", .svn = 2, .threads = 2},
    .conns = 8,
    .duration_s = 3,
    .target_name = "target",
    .label = "",
    .row_bytes = 1u << 20,
    .query_bytes = 64ull << 20,
    .hold_s = 1,
    .storm_conns = 8,
    .storm_sched_idle = false,
};

static double secs(uint64_t ns) {
    return (double)ns / (double)NS_PER_S;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

// ---- JSON ---------------------------------------------------------------------------------------

static FILE *json_open(void) {
    if (g_o.out == NULL) {
        return stdout;
    }
    FILE *f = fopen(g_o.out, "a");
    return f != NULL ? f : stdout;
}

static void json_close(FILE *f) {
    fputs("}\n", f);
    if (f != stdout) {
        fclose(f);
    }
    fflush(stdout);
}

static const char *tls_name(enum bench_tls t) {
    return t == BENCH_TLS_NONE ? "none" : t == BENCH_TLS_SSLREQUEST ? "sslrequest" : "direct";
}

// json_str writes `s` as the inside of a JSON string, and the closing quote.
static void json_str(FILE *f, const char *s) {
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
        }
        fputc((unsigned char)*p < 0x20 ? ' ' : *p, f);
    }
    fputc('"', f);
}

// tickets_json writes the TLS 1.3 session tickets the target sent on `l`'s connections, in all
// and per TLS handshake completed there (-1 without one), keys prefixed with `prefix`. The
// client reads every ticket (a handshake's time includes it) and never resumes with one: the
// count shows what the target spends on tickets that a client like this one never uses.
static void tickets_json(FILE *f, const char *prefix, const struct bench_loop *l) {
    fprintf(f, ",\"%stls_handshakes\":%llu,\"%stickets_received\":%llu,"
               "\"%stickets_per_handshake\":%.3f",
            prefix, (unsigned long long)l->tls_handshakes, prefix, (unsigned long long)l->tickets,
            prefix,
            l->tls_handshakes > 0 ? (double)l->tickets / (double)l->tls_handshakes : -1.0);
}

// json_head writes the fields every result has; the caller continues with ",..." and closes.
static FILE *json_head(const struct bench_loop *l, uint64_t errors) {
    FILE *f = json_open();
    fprintf(f,
            "{\"scenario\":\"%s\",\"target\":\"%s\",\"label\":\"%s\",\"host\":\"%s\",\"port\":%u,"
            "\"tls\":\"%s\",\"auth\":\"%s\",\"tls_version\":\"%s\",\"cipher\":\"%s\","
            "\"group\":\"%s\",\"alpn\":\"%s\",\"cert_pool\":%u,\"errors\":%llu,"
            "\"first_error\":\"",
            g_o.scenario, g_o.target_name, g_o.label, g_o.t.host, g_o.t.port, tls_name(g_o.t.tls),
            g_o.attested ? "attested" : g_o.cert || g_pool ? "mtls" : "none", l->tls_version,
            l->tls_cipher, l->tls_group, l->tls_alpn, g_pool_n, (unsigned long long)errors);
    json_str(f, l->first_error);
    fputs(",\"proxy_priority\":\"", f);
    json_str(f, g_o.proxy_priority != NULL ? g_o.proxy_priority : "");
    fputs(",\"run_order\":\"", f);
    json_str(f, g_o.run_order != NULL ? g_o.run_order : "");
    tickets_json(f, "", l);
    return f;
}

// Client-chain counters of the gateway (--proxy-api), read before and after a timed section:
// how many mTLS handshakes it verified in full and how many it took from its cache of verified
// chains. -1 without --proxy-api or when the API did not answer.
struct gw_certs {
    long long v[2];
};

static void gw_certs_read(struct gw_certs *g) {
    static const char *const names[2] = {"atls_client_cert_verifications_total",
                                         "atls_client_cert_cache_hits_total"};
    g->v[0] = g->v[1] = -1;
    if (g_o.proxy_api != NULL && bench_gateway_metric(g_o.proxy_api, names, g->v, 2) != 0) {
        fprintf(stderr, "atls-bench: --proxy-api %s: no /metrics answer\n", g_o.proxy_api);
    }
}

static void gw_certs_json(FILE *f, const struct gw_certs *a, const struct gw_certs *b) {
    long long ver = a->v[0] >= 0 && b->v[0] >= 0 ? b->v[0] - a->v[0] : -1;
    long long hit = a->v[1] >= 0 && b->v[1] >= 0 ? b->v[1] - a->v[1] : -1;
    fprintf(f, ",\"cert_verifications\":%lld,\"cert_cache_hits\":%lld", ver, hit);
}

// ---- proxy sampling -----------------------------------------------------------------------------

struct sample {
    double proxy_cpu_s;
    double self_cpu_s;
    uint64_t t_ns;
    struct bench_ticks ticks;
};

static void sample_now(struct sample *s) {
    s->proxy_cpu_s = g_o.proxy_pid > 0 ? bench_proc_cpu_s(g_o.proxy_pid) : -1;
    s->self_cpu_s = self_cpu_s();
    s->t_ns = bench_now_ns();
    bench_cpu_ticks(&s->ticks);
}

// Calibration of the CPUs' speed (bench_calibrate) before and after a throughput run, outside
// its timed section: ,"calib_ns_per_m":{"before":[..],"after":[..]}.
struct calib_pair {
    double before[BENCH_CPUS_MAX], after[BENCH_CPUS_MAX];
    double chase_before[BENCH_CPUS_MAX], chase_after[BENCH_CPUS_MAX];
    int n;
};

static void calib_json_one(FILE *f, const char *key, const double *b, const double *a, int n,
                           const char *fmt) {
    fprintf(f, ",\"%s\":{\"before\":[", key);
    for (int i = 0; i < n; i++) {
        fputs(i ? "," : "", f);
        fprintf(f, fmt, b[i]);
    }
    fputs("],\"after\":[", f);
    for (int i = 0; i < n; i++) {
        fputs(i ? "," : "", f);
        fprintf(f, fmt, a[i]);
    }
    fputs("]}", f);
}

static void calib_json(FILE *f, const struct calib_pair *c) {
    calib_json_one(f, "calib_ns_per_m", c->before, c->after, c->n, "%.0f");
    calib_json_one(f, "calib_chase_ns", c->chase_before, c->chase_after, c->n, "%.2f");
}

static double proxy_cpu(const struct sample *a, const struct sample *b) {
    return a->proxy_cpu_s < 0 || b->proxy_cpu_s < 0 ? -1 : b->proxy_cpu_s - a->proxy_cpu_s;
}

// ---- handshake ----------------------------------------------------------------------------------

struct hs {
    struct bench_cert *pool;
    uint32_t pool_n, pool_next;
    bool pool_cycle; // --cert-pool: take pool[pool_next] in turn, round and round
    uint32_t conc, inflight;
    uint64_t start_ns, deadline_ns, count_max;
    uint64_t started, done, failed;
    volatile bool *external_stop; // storm: the query side finished
    struct bench_hist hist;       // connect -> SELECT 1 answered
    bool stalled;
};

static bool hs_may_start(const struct hs *h) {
    if (h->external_stop != NULL && *h->external_stop) {
        return false;
    }
    return bench_now_ns() < h->deadline_ns && (h->count_max == 0 || h->started < h->count_max) &&
           (h->pool == NULL || h->pool_cycle || h->pool_next < h->pool_n);
}

static void hs_refill(struct bench_loop *l, struct hs *h) {
    while (h->inflight < h->conc && hs_may_start(h)) {
        const struct bench_cert *cert = h->pool != NULL ? &h->pool[h->pool_next] : NULL;
        struct bench_conn *c = bench_conn_open(l, cert);
        if (c == NULL) {
            h->failed++;
            h->stalled = true; // retry on the next tick
            return;
        }
        if (h->pool != NULL) {
            h->pool_next = h->pool_cycle && h->pool_next + 1 == h->pool_n ? 0 : h->pool_next + 1;
        }
        h->started++;
        h->inflight++;
    }
    if (h->inflight == 0 && !hs_may_start(h)) {
        l->stop = true;
    }
}

static void hs_on_ready(struct bench_loop *l, struct bench_conn *c, bool first) {
    struct hs *h = l->drv.arg;
    if (first) {
        bench_conn_query(l, c, "SELECT 1");
        return;
    }
    bench_hist_add(&h->hist, bench_now_ns() - c->t_open_ns);
    h->done++;
    bench_conn_close(l, c, true);
}

static void hs_on_closed(struct bench_loop *l, struct bench_conn *c, bool failed, const char *why) {
    struct hs *h = l->drv.arg;
    (void)c;
    (void)why;
    h->inflight--;
    if (failed) {
        h->failed++;
    }
    hs_refill(l, h);
}

static void hs_on_tick(struct bench_loop *l) {
    struct hs *h = l->drv.arg;
    h->stalled = false;
    hs_refill(l, h);
}

static void hs_init(struct hs *h, struct bench_driver *d, uint32_t conc, double duration_s,
                    uint64_t count_max) {
    memset(h, 0, sizeof(*h));
    bench_hist_init(&h->hist);
    h->conc = conc;
    h->count_max = count_max;
    h->start_ns = bench_now_ns();
    h->deadline_ns = h->start_ns + (uint64_t)(duration_s * (double)NS_PER_S);
    *d = (struct bench_driver){.arg = h, .on_ready = hs_on_ready, .on_closed = hs_on_closed,
                               .on_tick = hs_on_tick};
}

// pool_json writes where a --cert-pool run began in the pool and the certificate the next run
// would take (both -1 without one): run.sh passes the latter to the next run against the same
// gateway as --cert-pool-start, so that its runs go round the whole pool one after another
// instead of each starting at the first certificate, which the gateway's cache of verified
// chains would still hold from the run before.
static void pool_json(FILE *f, const struct hs *h) {
    long long start = h->pool_cycle ? (long long)(g_o.cert_pool_start % h->pool_n) : -1;
    long long next = h->pool_cycle ? (long long)h->pool_next : -1;
    fprintf(f, ",\"cert_pool_start\":%lld,\"cert_pool_next\":%lld", start, next);
}

static int make_pool(struct bench_cert **pool, uint32_t n) {
    uint64_t t0 = bench_now_ns();
    int rc = bench_attest_pool_make(pool, n, &g_o.at);
    fprintf(stderr, "atls-bench: %u attested certificates (nonce fetch + simulated report) in %.2f s\n",
            n, secs(bench_now_ns() - t0));
    return rc;
}

static void free_pool(struct bench_cert *pool, uint32_t n) {
    for (uint32_t i = 0; pool != NULL && i < n; i++) {
        bench_cert_cleanup(&pool[i]);
    }
    free(pool);
}

static int run_handshake(SSL_CTX *ctx) {
    struct bench_cert *pool = NULL;
    uint32_t pool_n = 0;
    if (g_o.attested) {
        pool_n = g_o.count;
        if (pool_n == 0 || make_pool(&pool, pool_n) != 0) {
            fprintf(stderr, "atls-bench: attested handshakes need --count N and a nonce API\n");
            return 1;
        }
    }
    struct hs *h = malloc(sizeof(*h));
    struct bench_driver d;
    struct bench_loop l;
    if (h == NULL) {
        return 1;
    }
    hs_init(h, &d, g_o.conns, g_o.duration_s, g_o.count);
    h->pool = pool;
    h->pool_n = pool_n;
    if (pool == NULL && g_pool != NULL) {
        h->pool = g_pool; // mTLS: a different client certificate for each new connection
        h->pool_n = g_pool_n;
        h->pool_cycle = true;
        h->pool_next = g_o.cert_pool_start % g_pool_n;
    }
    if (bench_loop_init(&l, g_o.conns * 2 + 16, &g_o.t, ctx, &d) != 0) {
        return 1;
    }
    struct sample s0, s1;
    struct calib_pair cal;
    struct gw_certs g0, g1;
    cal.n = bench_calibrate(cal.before, cal.chase_before);
    gw_certs_read(&g0);
    sample_now(&s0);
    h->start_ns = bench_now_ns(); // the clock starts after the calibration
    h->deadline_ns = h->start_ns + (uint64_t)(g_o.duration_s * (double)NS_PER_S);
    hs_refill(&l, h);
    bench_loop_run(&l, h->deadline_ns + 30 * NS_PER_S);
    sample_now(&s1);
    gw_certs_read(&g1);
    bench_calibrate(cal.after, cal.chase_after);
    double el = secs(s1.t_ns - s0.t_ns);
    double pc = proxy_cpu(&s0, &s1);
    FILE *f = json_head(&l, h->failed);
    fprintf(f,
            ",\"concurrency\":%u,\"elapsed_s\":%.3f,\"handshakes\":%llu,\"rate_per_s\":%.1f,"
            "\"proxy_cpu_s\":%.3f,\"proxy_cpu_ms_per_handshake\":%.4f,\"client_cpu_s\":%.3f,"
            "\"steal_pct\":%.1f,\"steal_ms\":%.0f,\"latency\":",
            g_o.conns, el, (unsigned long long)h->done, (double)h->done / el, pc,
            pc >= 0 && h->done ? pc * 1000.0 / (double)h->done : -1.0,
            s1.self_cpu_s - s0.self_cpu_s, bench_steal_pct(&s0.ticks, &s1.ticks),
            bench_steal_ms(&s0.ticks, &s1.ticks));
    bench_hist_json(f, &h->hist);
    pool_json(f, h);
    gw_certs_json(f, &g0, &g1);
    bench_cpu_busy_json(f, &s0.ticks, &s1.ticks);
    calib_json(f, &cal);
    json_close(f);
    int rc = h->done > 0 ? 0 : 1;
    bench_loop_cleanup(&l);
    free(h);
    free_pool(pool, pool_n);
    return rc;
}

// ---- query (and the measured side of storm) -------------------------------------------------

struct q {
    uint32_t conns, ready, closed;
    bool started;
    uint64_t start_ns, warm_ns, switch_ns, deadline_ns;
    // Paced (open-loop) probe, --probe-rate: each connection sends its k-th query at a scheduled
    // time (user_u64) whether or not the target kept up, one in flight at a time (user_u32), and
    // latency runs from the scheduled time, so a stall is counted for every query it delayed.
    uint64_t period_ns; // per connection; 0: closed loop
    struct bench_hist hist[2]; // [0] before switch_ns, [1] after (storm); query alone: [0]
    uint64_t failed;
    bool ready_cmd_failed;
    volatile bool finished;
    // Steal over the measured halves: at the clock's start, and at the switch (written by the
    // storm thread as it starts, read after it is joined).
    struct bench_ticks tk_start, tk_switch;
};

static void q_on_ready(struct bench_loop *l, struct bench_conn *c, bool first) {
    struct q *q = l->drv.arg;
    uint64_t now = bench_now_ns();
    if (first) {
        if (++q->ready < q->conns) {
            return;
        }
        // Everyone is connected: run --ready-cmd (it sees only these connections: the storm
        // has not started), then start the clock and one query per connection.
        if (g_o.ready_cmd != NULL) {
            int st = system(g_o.ready_cmd);
            if (st != 0) {
                fprintf(stderr, "atls-bench: --ready-cmd exited with status %d\n", st);
                q->ready_cmd_failed = true;
            }
            now = bench_now_ns();
        }
        q->start_ns = now;
        bench_cpu_ticks(&q->tk_start);
        uint64_t dur = q->deadline_ns; // holds the duration until now
        q->warm_ns = now + dur / 10;
        q->switch_ns = q->switch_ns == 0 ? UINT64_MAX : now + q->switch_ns;
        q->deadline_ns = now + dur;
        // Published last: the storm thread reads switch_ns and tk_start once it sees `started`
        // (set first, the storm could start at once, while switch_ns still held a duration).
        __atomic_store_n(&q->started, true, __ATOMIC_RELEASE);
        for (uint32_t i = 0, j = 0; i < l->conns_max; i++) {
            if (l->conns[i].state != BENCH_CONN_READY) {
                continue;
            }
            if (q->period_ns == 0) {
                bench_conn_query(l, &l->conns[i], "SELECT 1");
            } else {
                l->conns[i].user_u32 = 0; // staggered: one query every period / conns in all
                l->conns[i].user_u64 = now + q->period_ns * j++ / q->conns;
            }
        }
        return;
    }
    if (q->period_ns == 0) {
        if (c->t_op_ns >= q->warm_ns) {
            bench_hist_add(&q->hist[c->t_op_ns >= q->switch_ns ? 1 : 0], now - c->t_op_ns);
        }
        if (now < q->deadline_ns) {
            bench_conn_query(l, c, "SELECT 1");
        } else {
            bench_conn_close(l, c, true);
        }
        return;
    }
    uint64_t due = c->user_u64;
    if (due >= q->warm_ns) {
        bench_hist_add(&q->hist[due >= q->switch_ns ? 1 : 0], now - due);
    }
    c->user_u32 = 0;
    c->user_u64 = due + q->period_ns;
    if (c->user_u64 >= q->deadline_ns) {
        bench_conn_close(l, c, true);
    }
    // The next query leaves from q_on_tick, at once if it is already due.
}

// q_pace sends every query that is due and sets the loop's next wake-up (paced probe).
static void q_pace(struct bench_loop *l) {
    uint64_t now = bench_now_ns(), next = 0;
    for (uint32_t i = 0; i < l->conns_max; i++) {
        struct bench_conn *c = &l->conns[i];
        if (c->state != BENCH_CONN_READY || c->user_u32 != 0) {
            continue;
        }
        if (c->user_u64 <= now) {
            c->user_u32 = 1;
            bench_conn_query(l, c, "SELECT 1");
        } else if (next == 0 || c->user_u64 < next) {
            next = c->user_u64;
        }
    }
    l->wake_ns = next;
}

static void q_on_closed(struct bench_loop *l, struct bench_conn *c, bool failed, const char *why) {
    struct q *q = l->drv.arg;
    (void)c;
    (void)why;
    q->failed += failed;
    if (++q->closed == q->conns) {
        l->stop = true;
        q->finished = true;
    }
}

// open_all opens `n` connections, at most OPEN_BURST_MAX connecting at once (driven by ticks).
struct opener {
    uint32_t want, opened;
    const struct bench_cert *cert;
    const struct bench_cert *pool; // attested: connection i uses pool[i]
};

static void q_on_tick(struct bench_loop *l);

static struct opener g_q_open;

static void opener_tick(struct bench_loop *l, struct opener *op, uint32_t ready) {
    while (op->opened < op->want && op->opened - ready < OPEN_BURST_MAX) {
        const struct bench_cert *cert = op->pool != NULL ? &op->pool[op->opened] : op->cert;
        if (bench_conn_open(l, cert) == NULL) {
            return;
        }
        op->opened++;
    }
}

static void q_on_tick(struct bench_loop *l) {
    struct q *q = l->drv.arg;
    opener_tick(l, &g_q_open, q->ready + q->closed);
    if (q->started && q->period_ns != 0) {
        q_pace(l);
    }
    if (!q->started && q->closed > 0 && q->ready + q->closed >= q->conns) {
        l->stop = true; // a connection failed during set-up: give up
        for (uint32_t i = 0; i < l->conns_max; i++) {
            if (l->conns[i].state == BENCH_CONN_READY) {
                bench_conn_close(l, &l->conns[i], true);
            }
        }
        q->finished = true;
    }
}

struct storm_arg {
    SSL_CTX *ctx;
    struct q *q;
    struct hs *h;
    struct bench_cert *pool;
    uint32_t pool_n;
    bool pool_cycle;
    struct bench_loop l;
    struct bench_target t;
    int rc;
    double cpu_s;
};

static void *storm_main(void *arg) {
    struct storm_arg *s = arg;
    // Wait for the measured side to reach its switch point.
    while (!s->q->finished &&
           (!__atomic_load_n(&s->q->started, __ATOMIC_ACQUIRE) || bench_now_ns() < s->q->switch_ns)) {
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    bench_cpu_ticks(&s->q->tk_switch);
    // The storm generator shares its CPU with the measured query thread (and, in split pinning,
    // the backend). With a closed query loop that core is saturated already and the storm's
    // share of it shows as query latency for every target, direct included; run.sh therefore
    // measures with a paced probe in a SCHED_FIFO thread (--probe-rate, --probe-sched fifo) and
    // leaves the storm at normal priority. --storm-sched idle is the other way round, and is no
    // fair comparison: the storm then gets only what the query side leaves, which differs per
    // target (a fast target starves its own storm).
    if (g_o.storm_sched_idle) {
        struct sched_param sp = {.sched_priority = 0};
        (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
    struct bench_driver d;
    hs_init(s->h, &d, g_o.storm_conns, 1e6, 0);
    s->h->pool = s->pool;
    s->h->pool_n = s->pool_n;
    s->h->pool_cycle = s->pool_cycle;
    s->h->pool_next = s->pool_cycle ? g_o.cert_pool_start % s->pool_n : 0;
    s->h->external_stop = &s->q->finished;
    s->t = g_o.t;
    if (g_o.storm_port != 0) {
        s->t.port = g_o.storm_port;
    }
    if (bench_loop_init(&s->l, g_o.storm_conns * 2 + 16, &s->t, s->ctx, &d) != 0) {
        s->rc = 1;
        return NULL;
    }
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    hs_refill(&s->l, s->h);
    s->rc = bench_loop_run(&s->l, bench_now_ns() + (uint64_t)((g_o.duration_s * 2 + 60) * 1e9));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    s->cpu_s = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    return NULL;
}

static int run_query(SSL_CTX *ctx, bool storm, struct bench_cert *mtls) {
    struct q *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return 1;
    }
    bench_hist_init(&q->hist[0]);
    bench_hist_init(&q->hist[1]);
    q->conns = g_o.conns;
    q->period_ns = g_o.probe_rate > 0 ? (uint64_t)((double)g_o.conns * 1e9 / g_o.probe_rate) : 0;
    // Storm: duration_s alone, then duration_s with the storm (one run, split histograms).
    q->deadline_ns = (uint64_t)(g_o.duration_s * (storm ? 2 : 1) * (double)NS_PER_S);
    q->switch_ns = storm ? (uint64_t)(g_o.duration_s * (double)NS_PER_S) : 0;
    struct bench_driver d = {.arg = q, .on_ready = q_on_ready, .on_closed = q_on_closed,
                             .on_tick = q_on_tick};
    struct bench_loop l;
    if (bench_loop_init(&l, g_o.conns + 16, &g_o.t, ctx, &d) != 0) {
        return 1;
    }
    // Attested: the persistent connections take the first `conns` certificates of the pool, the
    // storm (if any) the next `count`.
    struct bench_cert *pool = NULL;
    uint32_t pool_n = 0;
    if (g_o.attested) {
        pool_n = g_o.conns + (storm ? g_o.count : 0);
        if ((storm && g_o.count == 0) || make_pool(&pool, pool_n) != 0) {
            fprintf(stderr, "atls-bench: attested storm needs --count N and a nonce API\n");
            return 1;
        }
    }
    g_q_open = (struct opener){.want = g_o.conns, .cert = mtls, .pool = pool};
    struct storm_arg *s = NULL;
    pthread_t tid;
    if (storm) {
        s = calloc(1, sizeof(*s));
        s->h = calloc(1, sizeof(*s->h));
        s->ctx = ctx;
        s->q = q;
        s->pool = pool != NULL ? pool + g_o.conns : NULL;
        s->pool_n = pool != NULL ? g_o.count : 0;
        if (pool == NULL && g_pool != NULL) {
            // mTLS: the storm's handshakes take the --cert-pool certificates in turn (the
            // probe's connections keep --cert).
            s->pool = g_pool;
            s->pool_n = g_pool_n;
            s->pool_cycle = true;
        }
        pthread_create(&tid, NULL, storm_main, s);
    }
    // --probe-sched fifo: the measured thread (only; the storm thread was created before, at
    // normal priority) preempts everything else on its core, so what the probe sees is the
    // target, not the load generator and backend beside it. Paced, it takes little CPU.
    const char *probe_sched = "normal";
    if (g_o.probe_fifo) {
        struct sched_param sp = {.sched_priority = 1};
        int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (e != 0) {
            fprintf(stderr, "atls-bench: --probe-sched fifo: %s; the probe runs at normal priority\n",
                    strerror(e));
        } else {
            probe_sched = "fifo";
        }
    }
    struct sample s0, s1;
    struct gw_certs g0, g1;
    gw_certs_read(&g0);
    sample_now(&s0);
    uint64_t t_setup = bench_now_ns();
    opener_tick(&l, &g_q_open, 0);
    bench_loop_run(&l, t_setup + (uint64_t)((SETUP_TIMEOUT_S + g_o.duration_s * 2 + 10) * 1e9));
    sample_now(&s1);
    q->finished = true;
    if (storm) {
        pthread_join(tid, NULL);
    }
    gw_certs_read(&g1);
    double el = q->started ? secs(q->deadline_ns - q->start_ns) : 0;
    uint64_t n = q->hist[0].count + q->hist[1].count;
    FILE *f = json_head(&l, l.errors + (s ? s->l.errors : 0));
    fprintf(f, ",\"connections\":%u,\"duration_s\":%.3f,\"queries\":%llu,\"qps\":%.1f", g_o.conns,
            el, (unsigned long long)n,
            storm ? (double)q->hist[0].count / (el / 2 * 0.8) : (double)n / (el * 0.9));
    fprintf(f, ",\"probe_rate\":%.1f,\"probe_sched\":\"%s\",\"ready_cmd\":%s", g_o.probe_rate,
            probe_sched, g_o.ready_cmd != NULL ? "true" : "false");
    fprintf(f, ",\"proxy_cpu_s\":%.3f,\"steal_pct\":%.1f,\"steal_ms\":%.0f", proxy_cpu(&s0, &s1),
            bench_steal_pct(&q->tk_start, &s1.ticks), bench_steal_ms(&q->tk_start, &s1.ticks));
    gw_certs_json(f, &g0, &g1); // the probe's own handshakes included
    if (storm) {
        fprintf(f,
                ",\"steal_pct_alone\":%.1f,\"steal_pct_storm\":%.1f,\"steal_ms_alone\":%.0f,"
                "\"steal_ms_storm\":%.0f",
                bench_steal_pct(&q->tk_start, &q->tk_switch),
                bench_steal_pct(&q->tk_switch, &s1.ticks),
                bench_steal_ms(&q->tk_start, &q->tk_switch), bench_steal_ms(&q->tk_switch, &s1.ticks));
    }
    fputs(",\"latency\":", f);
    bench_hist_json(f, &q->hist[0]);
    if (storm) {
        fputs(",\"latency_storm\":", f);
        bench_hist_json(f, &q->hist[1]);
        double p0 = (double)bench_hist_pct(&q->hist[0], 0.99);
        double p1 = (double)bench_hist_pct(&q->hist[1], 0.99);
        double st_el = secs(bench_now_ns() - s->h->start_ns);
        fprintf(f,
                ",\"qps_storm\":%.1f,\"p99_ratio\":%.2f,\"storm_conns\":%u,\"storm_handshakes\":"
                "%llu,\"storm_rate_per_s\":%.1f,\"storm_failed\":%llu,\"storm_first_error\":\"%s\","
                "\"storm_sched\":\"%s\"",
                (double)q->hist[1].count / (el / 2), p0 > 0 ? p1 / p0 : 0.0, g_o.storm_conns,
                (unsigned long long)s->h->done, st_el > 0 ? (double)s->h->done / st_el : 0.0,
                (unsigned long long)s->h->failed, s->l.first_error,
                g_o.storm_sched_idle ? "idle" : "normal");
        tickets_json(f, "storm_", &s->l);
        pool_json(f, s->h);
    }
    json_close(f);
    int rc = n > 0 && q->failed == 0 && !q->ready_cmd_failed && (!storm || s->h->done > 0) ? 0 : 1;
    bench_loop_cleanup(&l);
    if (s != NULL) {
        bench_loop_cleanup(&s->l);
        free(s->h);
        free(s);
    }
    free(q);
    free_pool(pool, pool_n);
    return rc;
}

// ---- bulk ---------------------------------------------------------------------------------------

struct bulk {
    uint32_t conns, ready, closed;
    bool started;
    uint64_t start_ns, end_ns, deadline_ns;
    uint64_t bytes, queries;
    uint64_t failed;
    uint64_t rows;         // tuples per COPY (upload)
    uint64_t stream_bytes; // length of one binary COPY stream: header, tuples, trailer
    // One CopyData message (COPY_MSG_BYTES, plus room for a CopyDone after a short last one).
    // WARNING: between messages it holds 'x' at every data byte; copy_fill writes the stream's
    // other bytes over them and puts the 'x' back once the message is queued.
    uint8_t *copy_msg;
    char sql[128];
    struct sample s0, s1;
};

static void bulk_issue(struct bench_loop *l, struct bench_conn *c) {
    struct bulk *b = l->drv.arg;
    c->user_u32 = 0; // upload: COPY not yet accepted
    bench_conn_query(l, c, b->sql);
}

// copy_fill writes bytes [off, off + n) of the binary COPY stream (19-byte header; b->rows
// tuples of int16 1, int32 row_bytes, row_bytes of 'x'; int16 -1) to `out`, which holds 'x'
// there already, so only the headers and the trailer are written; with `restore` it writes 'x'
// over those instead. Returns how many of the n bytes are row payload.
static uint32_t copy_fill(const struct bulk *b, uint8_t *out, uint64_t off, uint32_t n,
                          bool restore) {
    static const uint8_t head[COPY_HEAD_BYTES] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r',
                                                  '\n', 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t trailer[2] = {0xff, 0xff};
    uint8_t tuple_head[COPY_TUPLE_HEAD_BYTES] = {0, 1};
    bench_pg_put_be32(tuple_head + 2, g_o.row_bytes);
    uint64_t tuple = COPY_TUPLE_HEAD_BYTES + (uint64_t)g_o.row_bytes;
    uint64_t body_end = COPY_HEAD_BYTES + b->rows * tuple;
    uint32_t done = 0, payload = 0;
    while (done < n) {
        uint64_t at = off + done;
        uint64_t left = n - done;
        const uint8_t *src = NULL;
        uint64_t len;
        if (at < COPY_HEAD_BYTES) {
            src = head + at;
            len = COPY_HEAD_BYTES - at;
        } else if (at < body_end) {
            uint64_t in = (at - COPY_HEAD_BYTES) % tuple;
            if (in < COPY_TUPLE_HEAD_BYTES) {
                src = tuple_head + in;
                len = COPY_TUPLE_HEAD_BYTES - in;
            } else {
                len = tuple - in < left ? tuple - in : left;
                payload += (uint32_t)len;
            }
        } else {
            src = trailer + (at - body_end);
            len = body_end + sizeof(trailer) - at;
        }
        len = len < left ? len : left;
        if (src != NULL) {
            if (restore) {
                memset(out + done, 'x', (size_t)len);
            } else {
                memcpy(out + done, src, (size_t)len);
            }
        }
        done += (uint32_t)len;
    }
    return payload;
}

// bulk_fill queues the binary COPY stream in CopyData messages of COPY_MSG_BYTES (the last one
// shorter, with the CopyDone in the same write when it fits) while less than
// BULK_HIGH_WATER_BYTES is pending; user_u64 is the stream offset reached, b->bytes counts the
// row payload queued.
static void bulk_fill(struct bench_loop *l, struct bench_conn *c) {
    struct bulk *b = l->drv.arg;
    if (c->user_u32 != 1) {
        return;
    }
    uint8_t *msg = b->copy_msg;
    while (c->user_u64 < b->stream_bytes && bench_conn_pending(c) < BULK_HIGH_WATER_BYTES) {
        uint64_t left = b->stream_bytes - c->user_u64;
        uint32_t n = left < COPY_MSG_DATA_BYTES ? (uint32_t)left : COPY_MSG_DATA_BYTES;
        size_t len = 5 + (size_t)n;
        bench_pg_put_be32(msg + 1, 4 + n);
        uint32_t payload = copy_fill(b, msg + 5, c->user_u64, n, false);
        bool last = n == left;
        if (last && len + 5 <= COPY_MSG_BYTES) {
            static const uint8_t done[5] = {'c', 0, 0, 0, 4};
            memcpy(msg + len, done, sizeof(done));
            len += sizeof(done);
            c->user_u32 = 2;
        }
        int rc = bench_conn_write(l, c, msg, len);
        copy_fill(b, msg + 5, c->user_u64, n, true);
        memset(msg + 5 + n, 'x', len - 5 - n);
        if (rc != 0) {
            return;
        }
        c->user_u64 += n;
        b->bytes += payload;
    }
    if (c->user_u64 == b->stream_bytes && c->user_u32 == 1) {
        static const uint8_t done[5] = {'c', 0, 0, 0, 4};
        c->user_u32 = 2;
        bench_conn_write(l, c, done, sizeof(done));
    }
}

static void bulk_on_msg(struct bench_loop *l, struct bench_conn *c, uint8_t type,
                        const uint8_t *body, uint32_t len) {
    (void)body;
    (void)len;
    if (type == 'G' && g_o.up) {
        c->user_u32 = 1;
        c->user_u64 = 0;
        bulk_fill(l, c);
    }
}

static void bulk_on_ready(struct bench_loop *l, struct bench_conn *c, bool first) {
    struct bulk *b = l->drv.arg;
    uint64_t now = bench_now_ns();
    if (first) {
        if (++b->ready < b->conns) {
            return;
        }
        b->started = true;
        sample_now(&b->s0);
        b->start_ns = now;
        b->deadline_ns = now + b->deadline_ns;
        for (uint32_t i = 0; i < l->conns_max; i++) {
            if (l->conns[i].state == BENCH_CONN_READY) {
                bulk_issue(l, &l->conns[i]);
            }
        }
        return;
    }
    if (!g_o.up) {
        b->bytes += c->parser.skipped_bytes; // DataRow bodies (payload + 6 bytes per row)
        c->parser.skipped_bytes = 0;
    }
    b->queries++;
    if (now < b->deadline_ns) {
        bulk_issue(l, c);
    } else {
        bench_conn_close(l, c, true);
    }
}

static void bulk_on_closed(struct bench_loop *l, struct bench_conn *c, bool failed,
                           const char *why) {
    struct bulk *b = l->drv.arg;
    (void)c;
    (void)why;
    b->failed += failed;
    if (++b->closed == b->conns) {
        b->end_ns = bench_now_ns();
        sample_now(&b->s1);
        l->stop = true;
    }
}

static struct opener g_b_open;

static void bulk_on_tick(struct bench_loop *l) {
    struct bulk *b = l->drv.arg;
    opener_tick(l, &g_b_open, b->ready + b->closed);
}

static int run_bulk(SSL_CTX *ctx, struct bench_cert *mtls) {
    struct bulk *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return 1;
    }
    b->copy_msg = malloc(COPY_MSG_BYTES + 5);
    if (b->copy_msg == NULL) {
        free(b);
        return 1;
    }
    b->copy_msg[0] = 'd';
    memset(b->copy_msg + 5, 'x', COPY_MSG_BYTES);
    b->conns = g_o.conns;
    b->deadline_ns = (uint64_t)(g_o.duration_s * (double)NS_PER_S);
    uint64_t rows = g_o.query_bytes / g_o.row_bytes;
    rows = rows == 0 ? 1 : rows;
    b->rows = rows;
    b->stream_bytes = COPY_HEAD_BYTES + rows * (COPY_TUPLE_HEAD_BYTES + (uint64_t)g_o.row_bytes) + 2;
    if (g_o.up) {
        snprintf(b->sql, sizeof(b->sql), "COPY bench_sink FROM STDIN (FORMAT binary)");
    } else {
        snprintf(b->sql, sizeof(b->sql), "SELECT repeat('x', %u) FROM generate_series(1, %llu)",
                 g_o.row_bytes, (unsigned long long)rows);
    }
    struct bench_driver d = {.arg = b, .on_ready = bulk_on_ready, .on_msg = bulk_on_msg,
                             .on_drained = bulk_fill, .on_closed = bulk_on_closed,
                             .on_tick = bulk_on_tick};
    struct bench_loop l;
    if (bench_loop_init(&l, g_o.conns + 16, &g_o.t, ctx, &d) != 0) {
        return 1;
    }
    g_b_open = (struct opener){.want = g_o.conns, .cert = mtls};
    struct calib_pair cal;
    cal.n = bench_calibrate(cal.before, cal.chase_before);
    opener_tick(&l, &g_b_open, 0);
    bench_loop_run(&l, bench_now_ns() + (uint64_t)((SETUP_TIMEOUT_S + g_o.duration_s + 30) * 1e9));
    bench_calibrate(cal.after, cal.chase_after);
    double el = b->started && b->end_ns > b->start_ns ? secs(b->end_ns - b->start_ns) : 0;
    double pc = b->started ? proxy_cpu(&b->s0, &b->s1) : -1;
    double gb = (double)b->bytes / 1e9;
    FILE *f = json_head(&l, l.errors);
    fprintf(f,
            ",\"direction\":\"%s\",\"connections\":%u,\"row_bytes\":%u,\"query_bytes\":%llu,"
            "\"elapsed_s\":%.3f,\"bytes\":%llu,\"queries\":%llu,\"bytes_per_s\":%.0f,"
            "\"gbit_per_s\":%.3f,\"proxy_cpu_s\":%.3f,\"proxy_cpu_s_per_gb\":%.3f,"
            "\"client_cpu_s\":%.3f,\"steal_pct\":%.1f,\"steal_ms\":%.0f",
            g_o.up ? "up" : "down", g_o.conns, g_o.row_bytes,
            (unsigned long long)(rows * g_o.row_bytes), el, (unsigned long long)b->bytes,
            (unsigned long long)b->queries, el > 0 ? (double)b->bytes / el : 0.0,
            el > 0 ? (double)b->bytes * 8 / el / 1e9 : 0.0, pc, pc >= 0 && gb > 0 ? pc / gb : -1.0,
            b->started ? b->s1.self_cpu_s - b->s0.self_cpu_s : 0.0,
            b->started ? bench_steal_pct(&b->s0.ticks, &b->s1.ticks) : -1.0,
            b->started ? bench_steal_ms(&b->s0.ticks, &b->s1.ticks) : -1.0);
    // Upload: the size of each CopyData message written (header included; one TLS record).
    fprintf(f, ",\"copy_msg_bytes\":%u", g_o.up ? COPY_MSG_BYTES : 0u);
    if (b->started) {
        bench_cpu_busy_json(f, &b->s0.ticks, &b->s1.ticks);
    }
    calib_json(f, &cal);
    json_close(f);
    int rc = b->bytes > 0 && b->failed == 0 ? 0 : 1;
    bench_loop_cleanup(&l);
    free(b->copy_msg);
    free(b);
    return rc;
}

// ---- idle ---------------------------------------------------------------------------------------

struct idle {
    uint32_t want, ready, closed;
    uint64_t failed;
    bool holding;
    uint64_t all_ready_ns, hold_until_ns;
    long rss_before_kb, rss_after_kb;
};

static struct opener g_i_open;

static void idle_on_ready(struct bench_loop *l, struct bench_conn *c, bool first) {
    struct idle *s = l->drv.arg;
    (void)c;
    if (first && ++s->ready == s->want) {
        s->all_ready_ns = bench_now_ns();
        s->hold_until_ns = s->all_ready_ns + (uint64_t)(g_o.hold_s * (double)NS_PER_S);
        s->holding = true;
    }
}

static void idle_on_closed(struct bench_loop *l, struct bench_conn *c, bool failed,
                           const char *why) {
    struct idle *s = l->drv.arg;
    (void)c;
    (void)why;
    s->failed += failed;
    s->closed++;
    if (s->closed == g_i_open.opened && g_i_open.opened == s->want) {
        l->stop = true;
    }
}

static void idle_close_all(struct bench_loop *l) {
    for (uint32_t i = 0; i < l->conns_max; i++) {
        if (l->conns[i].state != BENCH_CONN_FREE && l->conns[i].state != BENCH_CONN_CLOSING) {
            bench_conn_close(l, &l->conns[i], true);
        }
    }
}

static void idle_on_tick(struct bench_loop *l) {
    struct idle *s = l->drv.arg;
    if (s->failed > 0 && !l->stop) {
        // A connection failed while opening: stop opening and report what was reached.
        g_i_open.want = g_i_open.opened;
        s->want = s->ready;
        s->rss_after_kb = g_o.proxy_pid > 0 ? bench_proc_rss_kb(g_o.proxy_pid) : -1;
        idle_close_all(l);
        l->stop = true;
        return;
    }
    opener_tick(l, &g_i_open, s->ready + s->closed);
    if (s->holding && bench_now_ns() >= s->hold_until_ns) {
        s->holding = false;
        s->rss_after_kb = g_o.proxy_pid > 0 ? bench_proc_rss_kb(g_o.proxy_pid) : -1;
        idle_close_all(l);
    }
}

static int run_idle(SSL_CTX *ctx, struct bench_cert *mtls) {
    struct idle s = {.want = g_o.conns, .rss_after_kb = -1};
    s.rss_before_kb = g_o.proxy_pid > 0 ? bench_proc_rss_kb(g_o.proxy_pid) : -1;
    struct bench_driver d = {.arg = &s, .on_ready = idle_on_ready, .on_closed = idle_on_closed,
                             .on_tick = idle_on_tick};
    struct bench_loop l;
    if (bench_loop_init(&l, g_o.conns + 16, &g_o.t, ctx, &d) != 0) {
        return 1;
    }
    g_i_open = (struct opener){.want = g_o.conns, .cert = mtls};
    uint64_t t0 = bench_now_ns();
    opener_tick(&l, &g_i_open, 0);
    bench_loop_run(&l, t0 + (uint64_t)((SETUP_TIMEOUT_S + g_o.hold_s + 10) * 1e9));
    uint32_t held = s.all_ready_ns ? s.want : s.ready;
    long delta = s.rss_after_kb >= 0 && s.rss_before_kb >= 0 ? s.rss_after_kb - s.rss_before_kb : -1;
    FILE *f = json_head(&l, s.failed);
    fprintf(f,
            ",\"requested\":%u,\"held\":%u,\"open_s\":%.3f,\"hold_s\":%.1f,\"rss_before_kb\":%ld,"
            "\"rss_after_kb\":%ld,\"rss_per_conn_kb\":%.2f",
            g_o.conns, held, s.all_ready_ns ? secs(s.all_ready_ns - t0) : -1.0, g_o.hold_s,
            s.rss_before_kb, s.rss_after_kb,
            delta >= 0 && held > 0 ? (double)delta / (double)held : -1.0);
    json_close(f);
    bench_loop_cleanup(&l);
    return held == g_o.conns && s.failed == 0 ? 0 : 1;
}

// ---- command line -------------------------------------------------------------------------------

static void usage(void) {
    fputs("usage: atls-bench handshake|bulk|query|idle|storm [options]\n"
          "       atls-bench serve --listen 127.0.0.1:PORT [--conns N]\n"
          "target:  --host H --port P --tls none|sslrequest|direct --user U --db D\n"
          "         --cert F --key F                  client certificate (mutual TLS)\n"
          "         --cert-pool DIR                   handshake, storm: each new connection takes\n"
          "                                           the next NAME.crt/NAME.key of DIR in turn\n"
          "                                           (storm: the probe keeps --cert)\n"
          "         --cert-pool-start N               begin with the N-th of them (default 0); the\n"
          "                                           JSON gives the next one (cert_pool_next)\n"
          "         --attest-api H:P --sim-dir D --measurement HEX96 [--svn N]\n"
          "                                           attested: one fresh certificate per handshake\n"
          "load:    --conns N --duration S --count N (handshake: stop after N; attested: pool size)\n"
          "         --up | --down  --row-bytes N --query-bytes N   (bulk)\n"
          "         --hold S                          (idle)   --storm-conns N (storm)\n"
          "         --storm-sched idle|normal         storm thread priority (default normal)\n"
          "         --probe-rate Q (query, storm)     paced: Q queries/s in all, latency from each\n"
          "                                           query's scheduled time (default: closed loop)\n"
          "         --probe-sched fifo|normal         measured thread priority (default normal)\n"
          "         --storm-port P                    storm another listener (a diagnosis aid)\n"
          "         --ready-cmd CMD (query, storm)    run CMD (sh -c) once the connections are\n"
          "                                           open, before measuring; fails the run if\n"
          "                                           CMD fails\n"
          "report:  --proxy-pid PID --target-name NAME --label TEXT --out FILE (JSON lines)\n"
          "         --proxy-api H:P                   atls-proxy API: client chains it verified\n"
          "                                           / took from its cache (handshake, storm)\n"
          "         --proxy-priority TEXT             the target's scheduling priority, recorded\n"
          "         --run-order TEXT                  the order of the runs compared with this one,\n"
          "                                           recorded (run.sh: direct,atls,haproxy ...)\n",
          stderr);
}

static int parse_hex48(uint8_t out[48], const char *s) {
    if (strlen(s) != 96) {
        return -1;
    }
    for (size_t i = 0; i < 48; i++) {
        unsigned v = 0;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int parse_args(int argc, char **argv) {
    g_o.scenario = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = strcmp(a, "--up") == 0 || strcmp(a, "--down") == 0;
        if (!flag && v == NULL) {
            fprintf(stderr, "atls-bench: option %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--up") == 0) {
            g_o.up = true;
        } else if (strcmp(a, "--down") == 0) {
            g_o.up = false;
        } else if (strcmp(a, "--host") == 0) {
            snprintf(g_o.t.host, sizeof(g_o.t.host), "%s", v);
        } else if (strcmp(a, "--port") == 0) {
            g_o.t.port = (uint16_t)atoi(v);
        } else if (strcmp(a, "--tls") == 0) {
            g_o.t.tls = strcmp(v, "none") == 0         ? BENCH_TLS_NONE
                        : strcmp(v, "sslrequest") == 0 ? BENCH_TLS_SSLREQUEST
                        : strcmp(v, "direct") == 0     ? BENCH_TLS_DIRECT
                                                       : (enum bench_tls)99;
            if ((int)g_o.t.tls == 99) {
                fprintf(stderr, "atls-bench: --tls none|sslrequest|direct\n");
                return -1;
            }
        } else if (strcmp(a, "--user") == 0) {
            g_o.t.user = v;
        } else if (strcmp(a, "--db") == 0) {
            g_o.t.dbname = v;
        } else if (strcmp(a, "--cert") == 0) {
            g_o.cert = v;
        } else if (strcmp(a, "--key") == 0) {
            g_o.key = v;
        } else if (strcmp(a, "--cert-pool") == 0) {
            g_o.cert_pool = v;
        } else if (strcmp(a, "--cert-pool-start") == 0) {
            g_o.cert_pool_start = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--proxy-api") == 0) {
            g_o.proxy_api = v;
        } else if (strcmp(a, "--proxy-priority") == 0) {
            g_o.proxy_priority = v;
        } else if (strcmp(a, "--run-order") == 0) {
            g_o.run_order = v;
        } else if (strcmp(a, "--attest-api") == 0) {
            g_o.at.api = v;
            g_o.attested = true;
        } else if (strcmp(a, "--sim-dir") == 0) {
            g_o.at.sim_dir = v;
        } else if (strcmp(a, "--measurement") == 0) {
            if (parse_hex48(g_o.at.measurement, v) != 0) {
                fprintf(stderr, "atls-bench: --measurement takes 96 hex digits\n");
                return -1;
            }
        } else if (strcmp(a, "--svn") == 0) {
            g_o.at.svn = (uint32_t)atoi(v);
        } else if (strcmp(a, "--pool-threads") == 0) {
            g_o.at.threads = (uint32_t)atoi(v);
        } else if (strcmp(a, "--conns") == 0) {
            g_o.conns = (uint32_t)atoi(v);
        } else if (strcmp(a, "--duration") == 0) {
            g_o.duration_s = atof(v);
        } else if (strcmp(a, "--count") == 0) {
            g_o.count = (uint32_t)atoi(v);
        } else if (strcmp(a, "--row-bytes") == 0) {
            g_o.row_bytes = (uint32_t)atoi(v);
        } else if (strcmp(a, "--query-bytes") == 0) {
            g_o.query_bytes = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--hold") == 0) {
            g_o.hold_s = atof(v);
        } else if (strcmp(a, "--storm-sched") == 0) {
            if (strcmp(v, "idle") != 0 && strcmp(v, "normal") != 0) {
                fprintf(stderr, "atls-bench: --storm-sched idle|normal\n");
                return -1;
            }
            g_o.storm_sched_idle = strcmp(v, "idle") == 0;
        } else if (strcmp(a, "--probe-rate") == 0) {
            g_o.probe_rate = atof(v);
            if (!(g_o.probe_rate > 0 && g_o.probe_rate <= 1e6)) {
                fprintf(stderr, "atls-bench: --probe-rate 1..1000000\n");
                return -1;
            }
        } else if (strcmp(a, "--probe-sched") == 0) {
            if (strcmp(v, "fifo") != 0 && strcmp(v, "normal") != 0) {
                fprintf(stderr, "atls-bench: --probe-sched fifo|normal\n");
                return -1;
            }
            g_o.probe_fifo = strcmp(v, "fifo") == 0;
        } else if (strcmp(a, "--ready-cmd") == 0) {
            g_o.ready_cmd = v;
        } else if (strcmp(a, "--storm-port") == 0) {
            g_o.storm_port = (uint16_t)atoi(v);
        } else if (strcmp(a, "--storm-conns") == 0) {
            g_o.storm_conns = (uint32_t)atoi(v);
        } else if (strcmp(a, "--proxy-pid") == 0) {
            g_o.proxy_pid = atoi(v);
        } else if (strcmp(a, "--target-name") == 0) {
            g_o.target_name = v;
        } else if (strcmp(a, "--label") == 0) {
            g_o.label = v;
        } else if (strcmp(a, "--out") == 0) {
            g_o.out = v;
        } else if (strcmp(a, "--listen") == 0) {
            g_o.listen = v;
        } else {
            fprintf(stderr, "atls-bench: unknown option %s\n", a);
            return -1;
        }
        i += flag ? 0 : 1;
    }
    bool serve = strcmp(g_o.scenario, "serve") == 0;
    if (g_o.conns == 0 || (!serve && g_o.conns > BENCH_CONNS_MAX - 16) || g_o.duration_s <= 0 ||
        g_o.row_bytes == 0 || g_o.row_bytes > (16u << 20) || (g_o.attested && g_o.at.sim_dir == NULL)) {
        fprintf(stderr, "atls-bench: bad --conns/--duration/--row-bytes, or --attest-api "
                        "without --sim-dir\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv) != 0) {
        usage();
        return 2;
    }
    if (strcmp(g_o.scenario, "serve") == 0) {
        return bench_serve_main(g_o.listen ? g_o.listen : "127.0.0.1:26300", g_o.conns < 64 ? 20000 : g_o.conns);
    }
    struct bench_cert mtls = {0};
    if (g_o.cert != NULL && bench_cert_load(&mtls, g_o.cert, g_o.key ? g_o.key : "") != 0) {
        return 2;
    }
    if (g_o.cert_pool != NULL) {
        bool hs_or_storm = strcmp(g_o.scenario, "handshake") == 0 || strcmp(g_o.scenario, "storm") == 0;
        if (!hs_or_storm || g_o.attested || g_o.t.tls == BENCH_TLS_NONE) {
            fprintf(stderr, "atls-bench: --cert-pool is for mTLS handshake and storm runs\n");
            return 2;
        }
        uint64_t t0 = bench_now_ns();
        if (bench_cert_pool_load(&g_pool, &g_pool_n, g_o.cert_pool) != 0) {
            return 2;
        }
        fprintf(stderr, "atls-bench: %u client certificates from %s in %.2f s\n", g_pool_n,
                g_o.cert_pool, secs(bench_now_ns() - t0));
    }
    SSL_CTX *ctx = NULL;
    if (g_o.t.tls != BENCH_TLS_NONE) {
        // The mTLS certificate goes on each SSL (bench_conn_open), so attested and mTLS
        // connections share one context.
        ctx = bench_tls_ctx_new(NULL);
        if (ctx == NULL) {
            return 2;
        }
    }
    struct bench_cert *cert = g_o.cert != NULL ? &mtls : NULL;
    int rc = 2;
    if (strcmp(g_o.scenario, "handshake") == 0) {
        if (cert != NULL && !g_o.attested && g_pool == NULL) {
            SSL_CTX_use_certificate(ctx, mtls.x509);
            SSL_CTX_use_PrivateKey(ctx, mtls.pkey);
        }
        rc = run_handshake(ctx);
    } else if (strcmp(g_o.scenario, "query") == 0) {
        rc = run_query(ctx, false, cert);
    } else if (strcmp(g_o.scenario, "storm") == 0) {
        if (cert != NULL && !g_o.attested && g_pool == NULL) {
            SSL_CTX_use_certificate(ctx, mtls.x509); // the storm's handshakes use it too
            SSL_CTX_use_PrivateKey(ctx, mtls.pkey);
        }
        rc = run_query(ctx, true, cert);
    } else if (strcmp(g_o.scenario, "bulk") == 0) {
        rc = run_bulk(ctx, cert);
    } else if (strcmp(g_o.scenario, "idle") == 0) {
        rc = run_idle(ctx, cert);
    } else {
        usage();
    }
    SSL_CTX_free(ctx);
    bench_cert_cleanup(&mtls);
    free_pool(g_pool, g_pool_n);
    return rc;
}
