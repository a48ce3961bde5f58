// atls_bench.h: shared declarations of the atls-bench load generator (bench/ only): the io_uring
// client connection engine, the pgwire stream parser, the latency histogram, the attested
// certificate pool and the built-in pgwire backend (`atls-bench serve`).
#ifndef ATLS_BENCH_H
#define ATLS_BENCH_H

#include <liburing.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_CONNS_MAX 20000u         // connection slots per loop (idle goes to 10,000)
#define BENCH_RX_BYTES (64u * 1024u)   // one receive buffer per connection
#define BENCH_TX_BYTES (64u * 1024u)   // one send buffer per connection
#define BENCH_TX_SLACK 64u             // room to shift it (flush in atls_bench_conn.c)
#define BENCH_MSG_BYTES_MAX (64u * 1024u) // largest pgwire message kept whole (others skipped)
#define BENCH_CQE_BATCH_MAX 256u
#define BENCH_RING_ENTRIES 4096u
#define BENCH_HIST_SUB 32u             // linear sub-buckets per power of two (~3% precision)
#define BENCH_HIST_POW 40u             // covers 1 ns .. ~18 min
#define BENCH_ERR_MAX 200u

// ---- time, /proc ----------------------------------------------------------------------------

// bench_now_ns returns CLOCK_MONOTONIC in nanoseconds.
uint64_t bench_now_ns(void);

// bench_proc_cpu_s returns utime+stime of process `pid` in seconds, or -1 when unreadable.
double bench_proc_cpu_s(int pid);

// bench_proc_rss_kb returns VmRSS of process `pid` in KiB, or -1 when unreadable.
long bench_proc_rss_kb(int pid);

// Machine-wide CPU time from the first line of /proc/stat, in clock ticks: `steal` is time the
// hypervisor ran something else while a vCPU wanted to run, `total` all of it. A stall that
// shows in every target alike (and in no profile of ours) is often steal: the bench records it
// for each timed section so that such rows can be told apart.
#define BENCH_CPUS_MAX 16

struct bench_ticks {
    uint64_t steal, total;
    // Per CPU (the first BENCH_CPUS_MAX): busy = all but idle and iowait (steal included: the
    // CPU was not ours to use), and total.
    uint64_t cpu_busy[BENCH_CPUS_MAX], cpu_total[BENCH_CPUS_MAX];
    int ncpu;
    bool ok;
};

// bench_cpu_ticks reads the current counters (ok = false when /proc/stat is unreadable).
void bench_cpu_ticks(struct bench_ticks *t);

// bench_steal_pct returns the share of CPU time stolen between `a` and `b` in percent (0 when
// less than a tick passed), or -1 when either reading failed.
double bench_steal_pct(const struct bench_ticks *a, const struct bench_ticks *b);

// bench_steal_ms returns the CPU time stolen between `a` and `b` in milliseconds, summed over
// the CPUs (10 ms resolution), or -1. A share hides a single long stall, which is what sets a
// latency percentile: at 2,000 queries/s one 40 ms stall delays 1% of a 4 s run.
double bench_steal_ms(const struct bench_ticks *a, const struct bench_ticks *b);

// bench_calibrate times two fixed workloads on each CPU (a thread pinned to it, best of a few
// short rounds, thread CPU time, so steal does not count): nanoseconds per million steps of an
// integer loop in ns_per_m[cpu], and nanoseconds per dependent load of a pointer chase through
// 256 KiB in chase_ns[cpu] (-1 where it could not run); returns the number of CPUs measured. What
// it shows is how fast the machine's CPUs were just then: on a shared host that moves by more
// than the differences the bench compares. The chase also feels a neighbour on the same core's
// cache, which the loop does not (seen here: 4.5-10.7 ns per load within minutes while the loop
// held within 10%); whether it predicts a target's cost was not established.
int bench_calibrate(double ns_per_m[BENCH_CPUS_MAX], double chase_ns[BENCH_CPUS_MAX]);

// bench_cpu_busy_json writes `,"cpu_busy_pct":[..]` (how busy each CPU was between `a` and `b`)
// and `,"bench_cpu":N`, the one CPU this process is pinned to, or -1. A throughput run whose
// load generator's CPU was saturated measured the load generator, not the target.
void bench_cpu_busy_json(FILE *f, const struct bench_ticks *a, const struct bench_ticks *b);

// ---- latency histogram (log-linear, fixed size, no allocation) -------------------------------

struct bench_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;
    uint64_t b[BENCH_HIST_POW * BENCH_HIST_SUB];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);
// bench_hist_pct returns the value (ns, upper edge of its bucket, capped at max) at quantile `q`
// in 0..1; 0 when empty.
uint64_t bench_hist_pct(const struct bench_hist *h, double q);
// bench_hist_json writes {"count":..,"min_us":..,"mean_us":..,"p50_us":..,...} to `f`.
void bench_hist_json(FILE *f, const struct bench_hist *h);

// ---- pgwire stream parser ------------------------------------------------------------------

// struct bench_pg_parser: splits a byte stream into pgwire messages. Messages of type 'D'
// (DataRow) and 'd' (CopyData), and any message larger than BENCH_MSG_BYTES_MAX, are not kept:
// their bodies are counted in `skipped_bytes` and delivered with len 0 and body NULL once
// complete. Everything else is delivered whole.
struct bench_pg_parser {
    uint8_t hdr[5];
    uint32_t hdr_len;
    uint32_t body_len;
    uint32_t body_got;
    bool skipping;
    uint64_t skipped_bytes;
    uint8_t *body; // BENCH_MSG_BYTES_MAX, owned
};

// bench_pg_msg_fn: called once per complete message; returns 0 to continue, <0 to stop.
typedef int (*bench_pg_msg_fn)(void *arg, uint8_t type, const uint8_t *body, uint32_t len);

int bench_pg_parser_init(struct bench_pg_parser *p);
void bench_pg_parser_cleanup(struct bench_pg_parser *p);
void bench_pg_parser_reset(struct bench_pg_parser *p);
// bench_pg_parser_feed consumes `len` bytes; returns 0, -EPROTO on a bad length, or the first
// negative value `fn` returned.
int bench_pg_parser_feed(struct bench_pg_parser *p, const uint8_t *data, size_t len,
                         bench_pg_msg_fn fn, void *arg);

// bench_pg_put_msg appends message `type` with `body` to `out` (capacity `cap`) and returns the
// new length, or 0 if it does not fit.
size_t bench_pg_put_msg(uint8_t *out, size_t cap, size_t at, uint8_t type, const void *body,
                        size_t len);
void bench_pg_put_be32(uint8_t *p, uint32_t v);
uint32_t bench_pg_be32(const uint8_t *p);

// ---- client engine ----------------------------------------------------------------------------

enum bench_tls {
    BENCH_TLS_NONE = 0,   // plaintext pgwire (the "direct" target)
    BENCH_TLS_SSLREQUEST, // SSLRequest, 'S', then TLS (what libpq does)
    BENCH_TLS_DIRECT,     // TLS from the first byte with ALPN "postgresql" (PostgreSQL 17 style)
};

// struct bench_cert: one client certificate and key (attested pool entry or the mTLS pair).
struct bench_cert {
    X509 *x509;
    EVP_PKEY *pkey;
};

enum bench_conn_state {
    BENCH_CONN_FREE = 0,
    BENCH_CONN_CONNECTING,
    BENCH_CONN_SSLREQ,
    BENCH_CONN_TLS,
    BENCH_CONN_STARTUP,
    BENCH_CONN_READY,
    BENCH_CONN_CLOSING,
};

struct bench_loop;

// struct bench_conn: one client connection slot; all of its state.
struct bench_conn {
    uint32_t idx;
    uint32_t gen;
    int fd;
    enum bench_conn_state state;
    SSL *ssl;
    BIO *rbio; // ciphertext in (memory BIO read by the SSL)
    BIO *wbio; // bytes to send (ciphertext, or plaintext when no TLS)
    uint8_t *rx;
    uint8_t *tx;
    uint32_t tx_len;
    uint32_t tx_off;
    bool recv_inflight;
    bool send_inflight;
    bool connect_inflight;
    bool close_after_send;
    struct bench_pg_parser parser;
    uint64_t t_open_ns;
    uint64_t t_op_ns;
    uint64_t user_u64; // driver scratch (bytes left, rows, phase)
    uint32_t user_u32;
    uint32_t next_free;
    struct sockaddr_in sa;
};

// struct bench_driver: scenario callbacks run by the loop's thread.
struct bench_driver {
    void *arg;
    // on_ready: ReadyForQuery received (first one after startup, then after every query).
    void (*on_ready)(struct bench_loop *l, struct bench_conn *c, bool first);
    // on_msg: any other complete backend message ('D'/'d' bodies arrive with len 0).
    void (*on_msg)(struct bench_loop *l, struct bench_conn *c, uint8_t type, const uint8_t *body,
                   uint32_t len);
    // on_drained: the send queue fell below the low-water mark (bulk upload refills here).
    void (*on_drained)(struct bench_loop *l, struct bench_conn *c);
    // on_closed: the slot is about to be released; `failed` with a reason when it failed.
    void (*on_closed)(struct bench_loop *l, struct bench_conn *c, bool failed, const char *why);
    // on_tick: every loop iteration (at least every 10 ms).
    void (*on_tick)(struct bench_loop *l);
};

struct bench_target {
    char host[64];
    uint16_t port;
    enum bench_tls tls;
    const char *user;
    const char *dbname;
};

struct bench_loop {
    struct io_uring ring;
    struct bench_conn *conns;
    uint8_t *rx_mem;
    uint8_t *tx_mem;
    uint32_t conns_max;
    uint32_t free_head;
    uint32_t live;
    SSL_CTX *ctx; // borrowed; NULL for BENCH_TLS_NONE
    const struct bench_target *target;
    struct bench_driver drv;
    bool stop;      // the driver asks the loop to return once live == 0
    uint64_t wake_ns; // the driver's next timed action (0: none); the wait ends by then
    uint64_t errors;
    uint64_t connect_errors;
    // TLS 1.3 NewSessionTicket messages the target sent on this loop's connections (read and
    // counted, never used: no connection resumes). A server that issues tickets pays for them
    // on every handshake (bench_tls_ctx_new).
    uint64_t tickets;
    uint64_t tls_handshakes; // TLS handshakes this loop completed
    char first_error[BENCH_ERR_MAX];
    uint8_t *plain; // SSL_read scratch
    // Negotiated TLS parameters of the first connection that completed a handshake.
    char tls_version[16];
    char tls_cipher[64];
    char tls_group[32];
    char tls_alpn[32];
};

// bench_loop_init prepares `l` with `conns_max` slots. Returns 0 or -errno.
int bench_loop_init(struct bench_loop *l, uint32_t conns_max, const struct bench_target *t,
                    SSL_CTX *ctx, const struct bench_driver *drv);
void bench_loop_cleanup(struct bench_loop *l);

// bench_loop_run runs until the driver set `stop` and no connection is left, or until
// `hard_deadline_ns` (then every remaining connection is failed). Returns 0 or -errno.
int bench_loop_run(struct bench_loop *l, uint64_t hard_deadline_ns);

// bench_conn_open starts a connection (connect, TLS with `cert` if not NULL, startup). Returns
// the slot or NULL when no slot is free or the socket cannot be made.
struct bench_conn *bench_conn_open(struct bench_loop *l, const struct bench_cert *cert);

// bench_conn_write queues `len` bytes of pgwire (plaintext) on `c`. Returns 0 or -EIO.
int bench_conn_write(struct bench_loop *l, struct bench_conn *c, const void *data, size_t len);

// bench_conn_pending returns the bytes queued on `c` not yet handed to the kernel.
size_t bench_conn_pending(const struct bench_conn *c);

// bench_conn_query sends a simple Query with `sql`.
int bench_conn_query(struct bench_loop *l, struct bench_conn *c, const char *sql);

// bench_conn_close sends Terminate (if `terminate`) and closes `c` once the send queue drained.
void bench_conn_close(struct bench_loop *l, struct bench_conn *c, bool terminate);

// bench_conn_fail closes `c` at once as failed with `why`.
void bench_conn_fail(struct bench_loop *l, struct bench_conn *c, const char *why);

// bench_tls_ctx_new makes the client SSL_CTX: TLS 1.3 only, no session resumption, ALPN
// "postgresql", server certificate not verified (libpq sslmode=require), and the default client
// certificate `cert` (may be NULL). Every NewSessionTicket a server sends is counted in the
// `tickets` of the connection's loop and dropped. Returns NULL on failure (printed).
SSL_CTX *bench_tls_ctx_new(const struct bench_cert *cert);

// bench_cert_load reads a PEM certificate and key. Returns 0 or -EINVAL (printed).
int bench_cert_load(struct bench_cert *out, const char *cert_path, const char *key_path);
void bench_cert_cleanup(struct bench_cert *c);

// bench_cert_pool_load reads every NAME.crt in `dir` with its NAME.key (names in strcmp order)
// into a malloc'ed array `*out` of `*n` certificates (--cert-pool). Returns 0, or -errno with
// nothing allocated (printed).
int bench_cert_pool_load(struct bench_cert **out, uint32_t *n, const char *dir);

// bench_parse_addr reads "a.b.c.d:port" into `out`. Returns 0 or -EINVAL.
int bench_parse_addr(struct sockaddr_in *out, const char *text);

// bench_http_get GETs `path` from `api` (host:port, IPv4) over HTTP/1.0, from source address `src`
// (host order; 0: any), and writes the whole answer, headers included, NUL-terminated into `out`
// (`cap` bytes; a longer answer is cut). 5 s receive timeout. Returns 0 or -errno/-EINVAL.
int bench_http_get(char *out, size_t cap, const char *api, uint32_t src, const char *path,
                   const char *accept);

// bench_gateway_metric GETs /metrics from `api` (host:port of an atls-proxy's HTTP API) and
// stores the value of each of the `n` counters `names` (summed over its label sets) in `vals`,
// -1 for one that is missing. Returns 0 or -errno (then every value is -1).
int bench_gateway_metric(const char *api, const char *const *names, long long *vals, size_t n);

// ---- attested certificate pool -----------------------------------------------------------------

struct bench_attest_opts {
    const char *api;      // host:port of the gateway's HTTP API
    const char *sim_dir;  // simulated AMD hierarchy directory
    uint8_t measurement[48];
    uint32_t svn;
    uint32_t threads;
};

// bench_attest_pool_make fetches `n` nonces from the gateway and makes one evidence-carrying
// certificate per nonce (simulated provider, Ed25519 key). Nonce requests come from rotating
// loopback source addresses 127.0.1.x because the API rate-limits per address (burst 64).
// `out` gets a malloc'ed array of `n` certificates. Returns 0 or -errno (printed).
int bench_attest_pool_make(struct bench_cert **out, uint32_t n,
                           const struct bench_attest_opts *o);

// ---- built-in pgwire backend -----------------------------------------------------------------

// bench_serve_main runs the minimal pgwire backend until SIGTERM/SIGINT (see atls_bench_serve.c).
int bench_serve_main(const char *listen_addr, uint32_t conns_max);

#endif // ATLS_BENCH_H
