// core_internal.h: shared among core/*.c only. Connection slots, shards, TLS glue, pgwire.
#ifndef ATLS_CORE_INTERNAL_H
#define ATLS_CORE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <openssl/ssl.h>

#include "core.h"
#include "core_base.h"
#include "core_api_query.h"
#include "core_prio.h"
#include "policy_types.h"
#include "ring.h"
#include "store.h"

#define CORE_CONN_MAGIC 0x41544c53u // "ATLS"
#define CORE_CHUNK_NONE UINT32_MAX
#define CORE_IDX_NONE UINT32_MAX
#define CORE_TICK_MS 50u
#define CORE_WHEEL_SLOTS 1024u
#define CORE_DENY_REASON_MAX 256u
// CORE_CLOSE_FLUSH_NS bounds how long a connection that is closing (close_after_flush) waits for
// its peers to take what is still queued for them (an ErrorResponse, the tail of a result): a
// client that stopped reading, or a backend that did, cannot hold the slot, its descriptors and
// the database session beyond it.
#define CORE_CLOSE_FLUSH_NS (10ull * 1000000000ull)
#define CORE_POLICY_RETIRED_MAX 64u // replaced policies a worker or the API may still read
#define CORE_TLS_CHAIN_MAX 16u       // certificates in the [tls] cert file

enum core_op {
    CORE_OP_ACCEPT = 0,
    CORE_OP_RECV_CLIENT,
    CORE_OP_RECV_BACKEND,
    CORE_OP_SEND_CLIENT,
    CORE_OP_SEND_BACKEND,
    CORE_OP_CONNECT,
    CORE_OP_CONNECT_TIMEOUT,
    CORE_OP_POLL_CLIENT,
    CORE_OP_POLL_BACKEND,
    CORE_OP_TICK,
    CORE_OP_IGNORE,
    CORE_OP_EVENT,
    CORE_OP_MSG,
    CORE_OP_AUDIT, // read of the store's durable-seq eventfd for this worker
    CORE_OP_HS_DONE, // read of the handshake thread's done eventfd
    CORE_OP_SHUTDOWN, // shutdown(SHUT_WR) of the backend socket after the client's close_notify
    CORE_OP_COUNT,
};

enum core_side_id { CORE_SIDE_CLIENT = 0, CORE_SIDE_BACKEND = 1 };

enum core_conn_state {
    CORE_CONN_FREE = 0,
    CORE_CONN_SNIFF,       // reading the pre-startup packet
    CORE_CONN_HANDSHAKE,   // TLS handshake
    CORE_CONN_STARTUP,     // reading the StartupMessage inside TLS
    CORE_CONN_AUDIT_WAIT,  // admitted: waiting until the decision record is durable
    CORE_CONN_CONNECTING,  // backend TCP connect in flight
    CORE_CONN_FORWARD,     // relaying both ways
    CORE_CONN_CANCEL_OUT,  // sending a CancelRequest to a backend for another session
    CORE_CONN_PASSTHROUGH, // passthrough mode: splice both ways
    CORE_CONN_CLOSING,     // waiting for every pending op before the slot is freed
};

// One socket of a connection: its inbound ring buffers and its outbound chunk.
struct core_side {
    int fd;     // -1 when closed; a slot of the ring's file table when `fixed`
    bool fixed; // fd is a direct descriptor (backend sockets in terminate mode)
    uint16_t in_bid[CORE_IN_BUFS_MAX];
    uint32_t in_len[CORE_IN_BUFS_MAX];
    uint32_t in_head;  // ring index of the first held buffer
    uint32_t in_count; // held buffers
    uint32_t in_off;   // bytes of the first buffer already consumed
    uint32_t in_bytes; // unconsumed bytes in all held buffers and in the stash
    // A client's first few bytes while the gateway sniffs them (in_stash): copied out of the
    // shared receive pool, which an unauthenticated client must not hold. Read before the buffers.
    uint8_t stash[CORE_SNIFF_BYTES_MAX];
    uint8_t stash_len;
    uint32_t out_chunk; // CORE_CHUNK_NONE when nothing is queued
    uint32_t out_len;   // bytes queued in the chunk
    uint32_t out_sent;  // bytes of the chunk already on the wire
    uint32_t out_inflight; // bytes of the send in flight (0 = none)
    bool recv_armed;
    bool recv_eof;
    bool recv_starved;
    bool wr_shut;
    int pipe_fd[2];        // passthrough: data read from this side waiting for the other
    uint32_t pipe_bytes;
    bool poll_in_armed;
    bool poll_out_armed;
    uint64_t bytes_rx;
    uint64_t bytes_tx;
};

// struct core_pgwire_frames follows the message boundaries of one direction of a session
// (type byte, 4-byte length, body), so the gateway knows where it may add a message of its own.
struct core_pgwire_frames {
    uint8_t hdr[5];     // header bytes of the current message seen so far
    uint32_t hdr_len;
    uint32_t body_len;  // body bytes of the current message (valid once its header is complete)
    uint32_t body_left; // body bytes of the current message still to come
    uint8_t last_type;  // type of the last message whose header was complete (0 = none yet)
};

struct core_shard;

struct core_conn {
    struct core_shard *shard;
    uint32_t magic;
    uint32_t generation;
    uint32_t index;
    enum core_conn_state state;
    uint32_t pending; // SQEs submitted whose final CQE has not arrived
    struct core_side side[2];
    SSL *ssl;
    // Where BoringSSL decrypts this connection's records (bio_read learns it): the page offset
    // of the last large record body it read, which SSL_read then copies out from.
    uint16_t tls_rx_page_off;
    bool tls_rx_known;
    bool tls_rx_header; // the last read BoringSSL asked for was a 5-byte record header
    bool direct_tls;
    bool gss_done;
    bool close_after_flush;
    bool close_deadline_set; // the CORE_CLOSE_FLUSH_NS deadline is armed
    // The client sent close_notify while forwarding: it sends no more but may still read (a
    // half-close, RFC 8446 §6.1). The backend gets the half-close once what the client sent is
    // written, and its answer still goes to the client; the session ends when the backend closes.
    bool client_shut;
    bool closed_logged;
    uint32_t backend_idx;
    uint32_t connect_tries;
    // Cancel routing: the key the client sees and the backend's own key.
    uint32_t proxy_pid;
    uint32_t proxy_key;
    uint32_t backend_pid;
    uint32_t backend_key;
    bool have_backend_key;
    // backend -> client scanner, active until the first ReadyForQuery
    bool scan_active;
    uint8_t scan_key[8]; // the backend's BackendKeyData body, as it arrives (b2c_frames says where)
    // The first bytes of an ErrorResponse the backend sends before its first ReadyForQuery, to
    // read its SQLSTATE: a node refusing new sessions (57P01..57P03) is marked down.
    uint8_t scan_err[48];
    uint8_t scan_err_len;
    struct core_pgwire_frames b2c_frames; // every backend -> client byte, the whole session
    // The StartupMessage as sent to the backend, kept while the session starts when there is
    // another backend to retry it on (backend_retry); NULL otherwise. Freed at the first
    // ReadyForQuery or at release.
    uint8_t *startup_copy;
    uint32_t startup_len;
    char user[CORE_NAME_MAX];
    char database[CORE_NAME_MAX];
    // timers (hashed wheel, intrusive list)
    uint64_t deadline_ns;
    uint32_t wheel_prev;
    uint32_t wheel_next;
    uint32_t wheel_bucket;
    uint32_t next_free;
    uint32_t starved_next;
    bool on_starved;
    // handshake queue (struct core_shard hs_head/hs_tail): TLS handshake steps run after the
    // completions of a loop turn, a budget at a time, so established sessions go first
    uint32_t hs_prev;
    uint32_t hs_next;
    bool hs_queued;
    bool hs_want_write;   // the last step stopped on a full send chunk
    // Handed to the handshake thread (core_hs.c) with job hs_job: until it comes back the
    // worker touches neither the SSL nor the attestation fields, and a close waits (why).
    bool hs_away;
    uint8_t hs_job;
    const char *close_deferred;
    uint64_t opened_ns;
    uint64_t last_io_ns; // last event of a forwarding session; the idle deadline moves lazily
    struct sockaddr_storage peer;
    const char *close_reason;
    // attestation (attested mode only)
    bool attested;
    bool attest_denied;
    uint8_t measurement[48];
    struct policy_input claims; // what the policy judged, kept to re-judge on reload
    // Why the gateway refused or ended the connection: the attestation or role denial when
    // attest_denied, else the message of the last ErrorResponse it sent (conn_fail).
    char deny_reason[CORE_DENY_REASON_MAX];
    const char *deny_code; // static stable code of the first denial (DESIGN.md §7)
    // audit (terminate mode with a store)
    uint64_t conn_id;        // unique per process: worker << 48 | per-worker serial
    uint32_t decision;       // index into the shard's decision pool, CORE_IDX_NONE when none
    uint64_t audit_seq;      // per-worker seq of this connection's decision record, 0 = none
    bool admitted;           // an allowing decision record was pushed: a disconnect is due
    bool audit_owed;         // holds one of the worker's reserved audit ring slots (audit_owed)
    uint64_t admitted_wall_ns;
};

#define CORE_CHECKS_MAX 16u
#define CORE_CHECK_DETAIL_MAX 96u
#define CORE_VERSION_MAX 64u

// struct core_decision holds the evidence and verdict of one handshake until its decision record
// is pushed (usually within one round trip). A per-worker pool, LIFO, so only as many entries
// as handshakes in that window are ever touched.
struct core_decision {
    uint32_t next_free;
    int verdict;                       // Atls__Verdict
    bool have_report;
    uint8_t report[1184];
    uint8_t vcek_sha256[32];
    bool have_vcek;
    uint8_t spki_sha256[32];
    bool have_spki;
    uint8_t nonce[64];
    uint32_t nonce_len;
    bool reused;
    uint32_t disabled_sections;        // policy_result.disabled_sections
    uint32_t check_count;
    struct {
        const char *code;              // static
        char detail[CORE_CHECK_DETAIL_MAX];
        bool is_warning;
    } checks[CORE_CHECKS_MAX];
    char policy_version[CORE_VERSION_MAX];
    uint64_t verify_ns;                // time spent verifying (0 = not verified)
};

// Latency histogram buckets (upper bounds, microseconds); the last bucket is +Inf.
#define CORE_HIST_BUCKETS 14u
extern const uint32_t core_hist_bounds_us[CORE_HIST_BUCKETS - 1];

struct core_hist {
    atomic_uint_fast64_t bucket[CORE_HIST_BUCKETS];
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
};

#define CORE_DENY_CODES_MAX 48u

// One denial reason code and its count; the worker appends, any thread reads.
struct core_deny_count {
    _Atomic(const char *) code; // published last (release)
    atomic_uint_fast64_t n;
};

// One live admitted session, as copied by its worker for GET /api/v1/clients/active.
struct core_active_item {
    uint64_t conn_id;
    uint32_t worker;
    char addr[64];
    uint32_t port;
    uint8_t measurement[48];
    bool have_measurement;
    char user[CORE_NAME_MAX];
    char database[CORE_NAME_MAX];
    uint64_t since_ns;
    uint64_t bytes_c2b;
    uint64_t bytes_b2c;
    uint64_t decision_seq;
};

// A snapshot request from the control thread, answered by the worker on its next event.
struct core_snapshot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t requested; // generation asked for (under mu)
    uint64_t answered;  // generation answered (under mu)
    atomic_bool pending;
    struct core_active_item *items; // conns_max entries, allocated by the control thread
    uint32_t count;
    bool closed; // (under mu) the worker's loop ended: it answers no more, and holds no session
};

// Per-worker counters: written by the owning worker only, read relaxed by others.
struct core_counters {
    _Alignas(64) atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t refused_full;
    atomic_uint_fast64_t active;
    atomic_uint_fast64_t handshakes_ok;
    atomic_uint_fast64_t handshakes_failed;
    atomic_uint_fast64_t plaintext_refused;
    atomic_uint_fast64_t protocol_errors;
    atomic_uint_fast64_t recv_starved; // receives that found the buffer pool empty (-ENOBUFS)
    atomic_uint_fast64_t recv_bufs_in_use; // gauge, published every tick
    atomic_uint_fast64_t backend_errors;
    atomic_uint_fast64_t backend_retries; // starting sessions moved to another backend
    atomic_uint_fast64_t cancels_routed;
    atomic_uint_fast64_t cancels_cross_worker; // of those, received from another worker (MSG_RING)
    atomic_uint_fast64_t bytes_c2b;
    atomic_uint_fast64_t bytes_b2c;
    atomic_uint_fast64_t timeouts;
    atomic_uint_fast64_t attest_ok;
    atomic_uint_fast64_t verifications;     // full evidence verifications (report signature)
    atomic_uint_fast64_t attest_reused;
    atomic_uint_fast64_t attest_denied;
    atomic_uint_fast64_t decisions_allowed; // decision records: admitted
    atomic_uint_fast64_t decisions_warned;  // admitted with warn-mode violations
    atomic_uint_fast64_t decisions_denied;
    atomic_uint_fast64_t audit_refused;     // admissions refused: audit ring full or store down
    atomic_uint_fast64_t audit_lost;        // denial/disconnect records that could not be queued
    atomic_uint_fast64_t audit_pushed;      // records queued (for the queue-depth gauge)
    atomic_uint_fast64_t refused_nofile;    // accepts failed: out of file descriptors
    atomic_uint_fast64_t refused_audit_busy; // closed at accept: the audit ring had no free slot
    atomic_uint_fast64_t client_cert_verifications; // mTLS: full X.509 checks of a client chain
    atomic_uint_fast64_t client_cert_cache_hits;    // mTLS: chains found in the verified cache
    atomic_uint_fast64_t hs_steps_offloaded;        // handshake steps run by the handshake thread
    atomic_uint_fast64_t hs_thread_raised;          // times it starved and was raised
    atomic_uint_fast64_t hs_steps_away;             // gauge: steps at the thread, not yet back
    atomic_uint_fast64_t workers_realtime;          // gauge: workers at SCHED_FIFO now
    atomic_uint_fast64_t worker_rt_dropped;         // times a busy worker left SCHED_FIFO
    atomic_uint_fast64_t busy_poll_hits;   // [proxy] busy_poll_us: polls that found work
    atomic_uint_fast64_t busy_poll_misses; // polls that ran out (the worker then slept)
    atomic_uint_fast64_t busy_poll_us;     // time spent polling
    struct core_hist handshake_hist;        // accept -> TLS handshake done
    struct core_hist verify_hist;           // attestation verification + policy
    struct core_deny_count deny[CORE_DENY_CODES_MAX];
};

struct core_backend_state {
    atomic_uint_fast32_t active;     // connections across all workers
    atomic_uint_fast64_t down_until; // monotonic ns; 0 = healthy
    atomic_uint_fast64_t probes;     // active health checks run (core_health.c)
    atomic_uint_fast64_t probes_failed; // of those, failed
};

struct core_proc;
struct core_certcache; // core_certcache.h
struct core_hs_thread; // core_hs.c
struct attest_verifier;
struct attest_evidence;
struct policy_nonce;
struct policy_reuse;
struct policy_ratelimit;

struct core_shard {
    uint32_t id;
    struct core_proc *proc;
    pthread_t thread;
    struct ring ring;
    // The ring's descriptor for other workers (cross-worker cancel by MSG_RING): -1 until this
    // worker's thread has set its ring up, then published with release; read with acquire.
    _Atomic int msg_fd;
    struct ring_buf bufs;
    int listen_fd[CORE_LISTEN_MAX];
    uint32_t listen_count;
    bool accepting;
    uint32_t accept_paused;     // listeners (bits) paused at EMFILE, re-armed by the next tick
    uint64_t nofile_logged_ns;
    uint64_t backend_silent_logged_ns; // last warning of backend_blame (core_shard.c)
    struct core_conn *conns;
    uint32_t conns_max;
    // Slots of the ring's registered file table (0: none). Connection slot i keeps its backend
    // socket in file slot i when i < fixed_files, so a session holds one descriptor of the
    // process's table (the client's) instead of two.
    uint32_t fixed_files;
    uint32_t free_head;
    uint32_t conn_fresh; // slots below it have served once (core_conn_open)
    uint32_t active;
    uint8_t *chunks;
    // One record's plaintext, page-aligned with a page to spare: SSL_read lands here instead of
    // in a chunk when its copy into the chunk would take memcpy's slow case (core_base_copy).
    uint8_t *tls_stage;
    uint32_t chunk_count;
    uint32_t *chunk_free;
    uint32_t chunk_free_len;
    uint32_t starved_head;
    uint32_t hs_head; // handshake queue, FIFO (CORE_IDX_NONE when empty)
    uint32_t hs_tail;
    bool hs_running;  // inside hs_run: conn_pump may step a handshake now
    // [proxy] handshake_thread: the thread that runs this worker's handshake steps (NULL when
    // they run inline, CORE_HS_STEPS_PER_TURN per loop turn).
    struct core_hs_thread *hs;
    uint64_t hs_done_buf;
    bool hs_done_armed;
    // The tick timeout and the event read are queued. A submission that failed leaves them
    // unqueued; the loop queues them again (every deadline and the drain hang on the tick).
    bool tick_armed;
    bool event_armed;
    // [proxy] worker_priority = realtime (core_prio.c): where this worker stands, and its CPU
    // time and the clock at the start of the current window.
    enum core_prio_state prio;
    uint64_t prio_cpu_ns;
    uint64_t prio_wall_ns;
    bool event_deferred; // an event waits for the handshake thread's steps to come back
    uint64_t hs_protect_until_ns; // established sessions moved bytes: steps go to the thread
    uint32_t wheel[CORE_WHEEL_SLOTS];
    uint64_t wheel_tick;
    struct __kernel_timespec tick_ts;
    struct __kernel_timespec connect_ts;
    int event_fd;
    uint64_t event_buf;
    SSL_CTX *ssl_ctx; // this worker's reference
    // mTLS mode: client chains that verified against ssl_ctx's client CA (NULL otherwise).
    // Cleared with every new ssl_ctx, and used only by SSLs made from the current one.
    struct core_certcache *certcache;
    _Atomic(SSL_CTX *) ssl_ctx_next; // set by the main thread on reload
    bool draining;
    bool stopped;
    bool thread_started;
    sem_t started;
    int start_ret;
    char start_err[128];
    struct core_counters counters;
    const struct policy *policy;       // this worker's view; NULL when not attesting
    const struct core_policy *policy_ref; // what `policy` points into; its epoch keys the reuse cache
    // Epoch of the policy this worker reads (release store once it no longer reads an older
    // one): the main thread frees a replaced policy only when every worker is past it.
    atomic_uint_fast64_t policy_epoch_adopted;
    struct attest_verifier *verifier;  // attested mode: this worker's own (not thread-safe)
    struct attest_evidence *evidence; // scratch for the connection being checked
    // audit
    struct core_decision *decisions; // conns_max entries (lazily backed), LIFO free list
    uint32_t decision_free;
    uint32_t decision_fresh; // entries below it have served once (core_decision_take)
    uint64_t conn_serial;
    uint64_t audit_efd_buf;
    bool audit_armed;
    uint64_t *audit_wait;            // FIFO of generation << 32 | slot in AUDIT_WAIT (ring of conns_max)
    uint32_t audit_wait_head;
    uint32_t audit_wait_len;
    // Audit ring slots reserved for the decisions of handshakes in progress: a connection is
    // accepted only while the ring has a free slot beyond them, so every decision finds one.
    uint32_t audit_owed;
    struct core_snapshot snap;
};

// struct core_policy is one published policy and its epoch (the reuse-cache key: a new policy
// never inherits verdicts cached under an older one). Immutable once published; epoch and
// policy travel together so a reader can never pair a policy with another one's epoch.
struct core_policy {
    uint64_t epoch;
    struct policy policy;
    // Digest of the trust anchors its [chain] roots named when it was loaded
    // (attest_verifier_trust_sha256); set on reloads by core_attest_check_roots.
    uint8_t trust_sha256[32];
};

struct core_proc {
    struct core_config cfg;
    uint32_t worker_count;
    struct core_shard *shards;
    struct core_backend_state backends[CORE_BACKENDS_MAX];
    // Attested mode: the current policy, published by the main thread on load and reload (NULL
    // otherwise). Workers adopt it on their next event; the API thread reads it per request
    // under `policy_api_hazard`. A replaced policy is retired, and freed by the main thread once
    // every worker adopted a newer epoch and the API hazard does not name it (core.c).
    _Atomic(const struct core_policy *) policy;
    _Atomic(const struct core_policy *) policy_api_hazard; // what the API thread reads now
    const struct core_policy *policy_retired[CORE_POLICY_RETIRED_MAX]; // main thread only
    uint32_t policy_retired_len;                                       // main thread only
    uint64_t policy_epoch_last;                                        // main thread only
    struct policy_nonce *nonces;  // shared by all threads, lock-free
    struct policy_reuse *reuse;   // shared by all threads, lock-free
    struct policy_ratelimit *nonce_limiter; // control thread only
    void *api;                    // HTTP API daemon (core_api.c)
    struct core_health *health;   // active backend health checks (core_health.c), or NULL
    size_t api_held_bytes;        // API answers queued and not yet sent (the API thread's)
    uint64_t nonce_share_refused; // nonce requests refused for the address's share (API thread)
    struct store *store;          // audit store; NULL when [audit] enabled = false
    atomic_bool draining;
    uint64_t drain_deadline_ns;
    uint64_t started_ns;
};

/* core_health.c: active backend health checks ([backend] health_check) */

// core_health_start starts the thread that probes every backend each health_interval_ms (none
// with health_check = off). Returns 0 or -errno with a reason in `err`.
int core_health_start(struct core_proc *proc, char *err, size_t err_len);
// core_health_stop stops and joins it, even mid-probe. Idempotent.
void core_health_stop(struct core_proc *proc);

/* core_tls.c */

// core_tls_ctx_new builds the server SSL_CTX from `cfg` (TLS 1.3 only, client certificate
// required, tickets and cache off, ALPN "postgresql"). Returns NULL and a reason in `err`.
SSL_CTX *core_tls_ctx_new(const struct core_config *cfg, char *err, size_t err_len);

// core_tls_conn_new creates the SSL for `conn` with the ring-backed BIO. Returns 0 or -ENOMEM.
int core_tls_conn_new(struct core_shard *shard, struct core_conn *conn);

// core_tls_client_still_trusted re-verifies the certificate chain `conn`'s client presented
// (mutual-TLS mode) against the client CA of `shard`'s current TLS context, through the
// worker's certificate cache. False with the reason in `why` when it no longer verifies.
// Worker thread, no handshake step away.
bool core_tls_client_still_trusted(struct core_shard *shard, struct core_conn *conn, char *why,
                                   size_t why_len);

// core_tls_alpn_is_postgresql reports whether ALPN "postgresql" was negotiated.
bool core_tls_alpn_is_postgresql(const SSL *ssl);

// core_tls_describe_error writes a one-line reason for the last TLS failure into `out`.
void core_tls_describe_error(char *out, size_t out_len);

/* core_hs.c: TLS handshake steps, inline or on the worker's handshake thread */

// The outcome of one handshake step (SSL_do_handshake, then the ALPN rule and, once possession
// is proven, the attestation check), applied by the worker.
struct core_hs_result {
    int ret;           // SSL_do_handshake
    int err;           // SSL_get_error when ret != 1
    bool alpn_refused; // direct TLS without ALPN "postgresql"
    uint64_t done_ns;  // when the TLS handshake completed (ret == 1)
    char why[128];     // the TLS failure, read from the stepping thread's error queue
};

// One step queued to the handshake thread. The worker owns a job while it is free; submitting
// hands the job and its connection's SSL to the thread, and the done queue hands both back.
// The SSL's BIO reads the staged client bytes and writes into `out` meanwhile.
struct core_hs_job {
    uint32_t conn;     // slot index
    uint32_t decision; // decision entry reserved for the attestation check, or CORE_IDX_NONE
    uint64_t submit_ns; // when the worker handed it over (core_hs_watch)
    uint32_t in_len;   // client bytes staged (copied, still held by the connection)
    uint32_t in_off;   // of those, read by the SSL (the worker consumes them on return)
    bool in_eof;       // the client closed after the staged bytes
    uint32_t out_cap;  // room the client side's send chunk had when staged
    uint32_t out_len;  // bytes the SSL wrote
    struct core_hs_result res;
    uint8_t in[CORE_HS_IN_BYTES];
    uint8_t out[CORE_HS_OUT_BYTES];
};

// core_hs_step runs one handshake step of `c` on the calling thread. `decision`, when not
// CORE_IDX_NONE, is the decision entry the attestation check takes (reserved by the worker for
// a step on the handshake thread, which must not touch the pool).
void core_hs_step(struct core_shard *shard, struct core_conn *c, uint32_t decision,
                  struct core_hs_result *r);
// core_hs_start creates the handshake thread of `shard` (called on the worker thread once it is
// pinned: the thread inherits the worker's CPU). Returns 0 or -errno with a reason in `err`.
int core_hs_start(struct core_shard *shard, char *err, size_t err_len);
// core_hs_stop lets the thread finish what was submitted, joins it and frees it. Idempotent.
void core_hs_stop(struct core_shard *shard);
// core_hs_job_take takes a free job (worker). Returns false when all are in flight.
bool core_hs_job_take(struct core_shard *shard, uint32_t *out_job);
// core_hs_job_of returns job `j`.
struct core_hs_job *core_hs_job_of(const struct core_shard *shard, uint32_t j);
// core_hs_submit hands job `j` (staged) to the thread and wakes it.
void core_hs_submit(struct core_shard *shard, uint32_t j);
// core_hs_done_pop takes the next finished job (worker); the caller frees it with core_hs_release.
bool core_hs_done_pop(struct core_shard *shard, uint32_t *out_job);
// core_hs_release returns job `j` to the free set (worker).
void core_hs_release(struct core_shard *shard, uint32_t j);
// core_hs_inflight counts jobs submitted and not yet released.
uint32_t core_hs_inflight(const struct core_shard *shard);
// core_hs_watch raises the thread to normal priority when a step has waited longer than
// CORE_HS_STARVE_NS (worker, from its tick).
void core_hs_watch(struct core_shard *shard, uint64_t now_ns);
// core_hs_done_fd is the eventfd the thread writes after each finished job.
int core_hs_done_fd(const struct core_shard *shard);

/* core_prio.c: [proxy] worker_priority */

// core_prio_start (worker thread, at start): when the config asks for realtime, checks that
// SCHED_FIFO is allowed (a refusal is logged and the worker stays at normal priority for good);
// the worker starts at normal priority either way, and core_prio_tick raises it.
void core_prio_start(struct core_shard *shard, uint64_t now_ns);
// core_prio_tick (worker, every tick): applies core_prio_next once per CORE_PRIO_WINDOW_NS.
void core_prio_tick(struct core_shard *shard, uint64_t now_ns);
// core_prio_stop (worker, at exit): takes the worker out of the workers_realtime gauge.
void core_prio_stop(struct core_shard *shard);

/* core_shard.c (I/O helpers used by the TLS BIO) */

// core_shard_in_read copies up to `len` unconsumed inbound bytes of `side` into `out`,
// recycling fully consumed ring buffers. Returns the byte count (0 = nothing buffered).
uint32_t core_shard_in_read(struct core_shard *shard, struct core_side *side, uint8_t *out,
                            uint32_t len);

// core_shard_out_append queues `len` bytes for sending on `side`. Returns bytes queued
// (may be short when the chunk is full).
uint32_t core_shard_out_append(struct core_shard *shard, struct core_side *side,
                               const uint8_t *data, uint32_t len);

// core_shard_conn_of_ssl returns the connection and shard owning `ssl`.
struct core_conn *core_shard_conn_of_ssl(const SSL *ssl, struct core_shard **out_shard);

/* core_pgwire.c */

enum core_pgwire_sniff {
    CORE_SNIFF_NEED_MORE = 0,
    CORE_SNIFF_DIRECT_TLS,
    CORE_SNIFF_SSL_REQUEST,
    CORE_SNIFF_GSSENC_REQUEST,
    CORE_SNIFF_CANCEL,
    CORE_SNIFF_PLAINTEXT, // a StartupMessage or anything else without TLS
};

// core_pgwire_sniff classifies the first `len` bytes of a connection.
enum core_pgwire_sniff core_pgwire_sniff(const uint8_t *buf, uint32_t len);

// core_pgwire_error writes an ErrorResponse (severity FATAL) into `out`. Returns its length or
// 0 when `cap` is too small.
uint32_t core_pgwire_error(uint8_t *out, uint32_t cap, const char *sqlstate, const char *msg);

enum core_pgwire_startup {
    CORE_STARTUP_NEED_MORE = 0,
    CORE_STARTUP_OK,
    CORE_STARTUP_CANCEL,     // a CancelRequest inside TLS
    CORE_STARTUP_BAD,        // malformed; `reason` says why
    CORE_STARTUP_VERSION,    // protocol other than 3.0 (3.x minor > 0 is downgraded)
};

// core_pgwire_startup parses a StartupMessage from `buf`. On OK fills `user`, `database` and
// `out_len` (message length); both names are then valid UTF-8 (CockroachDB's identifiers are
// UTF-8, and the names reach audit records and API answers). A name that is not is BAD, and
// that name is left in `user`/`database` with each invalid byte written as \xNN, for the
// record. Never reads past `len`.
enum core_pgwire_startup core_pgwire_startup(const uint8_t *buf, uint32_t len, uint32_t *out_len,
                                             char *user, size_t user_cap, char *database,
                                             size_t db_cap, const char **reason);

// core_pgwire_error_sqlstate finds the SQLSTATE ('C' field) among the first `len` bytes of an
// ErrorResponse body; `code` is empty when they do not hold it whole.
void core_pgwire_error_sqlstate(const uint8_t *fields, uint32_t len, char code[6]);

// core_pgwire_sqlstate_refuses: whether SQLSTATE `code` says the node takes no new sessions
// (57P01 admin_shutdown: CockroachDB's draining node, PostgreSQL shutting down; 57P02
// crash_shutdown; 57P03 cannot_connect_now: starting up, or in recovery); if so, `why` says it.
// Any other error (a wrong password, an unknown database) says nothing about the node.
bool core_pgwire_sqlstate_refuses(const char *code, char why[48]);

// core_pgwire_be32 / core_pgwire_put_be32: big-endian helpers.
uint32_t core_pgwire_be32(const uint8_t *p);
void core_pgwire_put_be32(uint8_t *p, uint32_t v);

// core_pgwire_frames_advance moves `f` past `n` bytes of the stream it follows.
void core_pgwire_frames_advance(struct core_pgwire_frames *f, const uint8_t *p, uint32_t n);
// core_pgwire_frames_is_boundary reports whether `f` stands between two messages.
bool core_pgwire_frames_is_boundary(const struct core_pgwire_frames *f);

#define CORE_PG_SSL_REQUEST 80877103u
#define CORE_PG_GSSENC_REQUEST 80877104u
#define CORE_PG_CANCEL_REQUEST 80877102u
#define CORE_PG_PROTOCOL_3_0 196608u

/* core_attest.c */

// core_attest_check_roots loads the trust anchors `p`'s policy names, as a worker would, sets
// p->trust_sha256 from them and frees them: a policy is published only if every worker will be
// able to verify under it. Returns 0 or -EINVAL with a reason in `err`.
int core_attest_check_roots(struct core_policy *p, char *err, size_t err_len,
                            const char *policy_path);
// core_attest_shard_init creates the worker's verifier (roots from the policy) and scratch.
int core_attest_shard_init(struct core_shard *shard, char *err, size_t err_len);
// core_attest_shard_cleanup frees what core_attest_shard_init made. Idempotent.
void core_attest_shard_cleanup(struct core_shard *shard);
// core_attest_on_verify runs the cheap checks from the TLS verify callback (evidence parses,
// binding to the certificate key, nonce known). A failure is recorded on `c`, not returned: the
// client learns the reason inside TLS after its StartupMessage.
void core_attest_on_verify(struct core_shard *shard, struct core_conn *c);
// core_attest_after_handshake runs the full verification, the policy and the nonce consume.
void core_attest_after_handshake(struct core_shard *shard, struct core_conn *c);
// core_attest_role_check applies [roles] to the StartupMessage user. False = denied.
bool core_attest_role_check(struct core_shard *shard, struct core_conn *c);
// core_attest_policy_changed adopts the newly published policy on this worker (rebuilding the
// verifier if [chain] changed) and calls `on_revoked` for each live attested session that the
// new policy denies, with the reason.
void core_attest_policy_changed(struct core_shard *shard,
                                void (*on_revoked)(struct core_shard *, struct core_conn *,
                                                   const char *reason));

/* core_audit.c */

// core_audit_init allocates the worker's decision pool and wait queue (startup only).
int core_audit_shard_init(struct core_shard *shard);
// core_audit_shard_cleanup frees them. Idempotent.
void core_audit_shard_cleanup(struct core_shard *shard);
// core_decision_get returns `c`'s decision entry, taking one from the pool on first use
// (never fails: the pool has one entry per slot).
struct core_decision *core_decision_get(struct core_shard *shard, struct core_conn *c);
// core_decision_put returns `c`'s decision entry to the pool. Idempotent.
void core_decision_put(struct core_shard *shard, struct core_conn *c);
// core_decision_take takes a reset entry from the pool without giving it to a connection.
uint32_t core_decision_take(struct core_shard *shard);
// core_decision_give_back returns entry `i` (from core_decision_take, never attached).
void core_decision_give_back(struct core_shard *shard, uint32_t i);
// core_audit_decision pushes the decision record of `c` (verdict from `c`: denied when
// c->attest_denied) and sets `*out_seq`. Returns 0 or the store_audit_push error.
int core_audit_decision(struct core_shard *shard, struct core_conn *c, const char *close_reason,
                        uint64_t *out_seq);
// core_audit_disconnect pushes the disconnect record of an admitted connection.
void core_audit_disconnect(struct core_shard *shard, struct core_conn *c, const char *reason);
// core_audit_reserve reserves an audit ring slot for the decision of a connection about to be
// accepted; false when none is free beyond those already reserved (refuse the connection).
bool core_audit_reserve(struct core_shard *shard);
// core_audit_unreserve returns `c`'s reserved slot, if it holds one (its decision was pushed,
// or it ends without one). Idempotent.
void core_audit_unreserve(struct core_shard *shard, struct core_conn *c);
// core_hist_add records `ns` in `h`.
void core_hist_add(struct core_hist *h, uint64_t ns);
// core_deny_count_add counts one denial with static code `code`.
void core_deny_count_add(struct core_shard *shard, const char *code);
// core_audit_snapshot_answer fills the snapshot of live sessions if one is requested (worker).
void core_audit_snapshot_answer(struct core_shard *shard);
// core_audit_snapshot_close: the worker's loop has ended; snapshots of it are empty from now on
// and nobody waits for it to answer (worker, last thing).
void core_audit_snapshot_close(struct core_shard *shard);

/* core_api.c */

// core_api_start starts the HTTP API (control thread) on cfg.api_listen. Returns 0 or -errno
// with a reason in `err`.
int core_api_start(struct core_proc *proc, char *err, size_t err_len);
// core_api_stop stops the HTTP API. Idempotent.
void core_api_stop(struct core_proc *proc);

/* core_backend.c */

// core_backend_pick chooses a healthy backend by least connections, skipping those in
// `tried_mask` (bit i = backend i). A failed backend is skipped for health_interval_ms, then
// one connection (the caller that gets it) probes it while the others skip it for another
// interval. With an empty mask and every backend down it returns the one that failed longest
// ago. Returns an index or CORE_IDX_NONE. Any thread.
uint32_t core_backend_pick(struct core_proc *proc, uint32_t tried_mask);

// core_backend_mark_down records a failed connect: the backend is skipped until `interval`.
void core_backend_mark_down(struct core_proc *proc, uint32_t idx);

// core_backend_mark_up records a successful connect.
void core_backend_mark_up(struct core_proc *proc, uint32_t idx);

/* core_shard.c */

// core_shard_start creates the worker's ring, listeners and slots, and starts its thread.
int core_shard_start(struct core_proc *proc, struct core_shard *shard, uint32_t id,
                     SSL_CTX *ctx, char *err, size_t err_len);

// core_shard_wake interrupts the worker's wait so it notices drain or reload.
void core_shard_wake(struct core_shard *shard);

// core_shard_wait waits for the worker thread (if it runs) to end; its resources stay.
void core_shard_wait(struct core_shard *shard);

// core_shard_join waits for the worker thread and frees its resources.
void core_shard_join(struct core_shard *shard);

#endif // ATLS_CORE_INTERNAL_H
