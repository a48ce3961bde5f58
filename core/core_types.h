// core_types.h: configuration, limits and per-connection state of the gateway core.
#ifndef ATLS_CORE_TYPES_H
#define ATLS_CORE_TYPES_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "store_types.h"

#ifdef __cplusplus
extern "C" {
#endif

// Limits (CONVENTIONS.md rule 10).
#define CORE_LISTEN_MAX 8u
#define CORE_BACKENDS_MAX 16u
#define CORE_WORKERS_MAX 64u
#define CORE_PATH_MAX 512u
#define CORE_NAME_MAX 64u
// Bulk transfers move several TLS records per socket operation: one receive takes up to
// CORE_RECV_BUF_BYTES (sixteen full records) and one send carries up to a chunk (five sealed
// records), so the kernel handles 96-256 KiB at a time instead of one 16 KiB record each.
// 256 KiB receives instead of 64 KiB cost the gateway 5-22% less CPU per GB on one bulk
// connection (bench/RESULTS.md: fewer receives and fewer ACKs to send per GB). The pool stays
// at 16 MiB per worker, so it holds 64 buffers: past ~48 sides holding data at once, receives
// wait on the starved list (on_recv's -ENOBUFS) until a quarter of the pool is free again.
#define CORE_CHUNK_BYTES (96u * 1024u)    // one send staging chunk (virtual until used)
#define CORE_RECV_BUF_BYTES (256u * 1024u) // one provided ring buffer
#define CORE_RECV_BUFS 64u                 // provided ring buffers per worker (16 MiB)
#define CORE_IN_BUFS_MAX 16u              // ring buffers one side may hold
#define CORE_IN_BUFS_HIGH 2u              // held buffers that pause a side's recv
#define CORE_HS_STEPS_PER_TURN 1u         // inline handshake steps between two looks at the ring
#define CORE_HS_JOBS 4u                   // handshake steps queued to a worker's handshake thread
#define CORE_HS_IN_BYTES (32u * 1024u)    // client handshake bytes one step may read
#define CORE_HS_OUT_BYTES (32u * 1024u)   // handshake bytes one step may write
// A session is established (its bytes must not wait behind handshake steps) once it is this
// old; its traffic sends handshake steps to the handshake thread for CORE_HS_PROTECT_NS.
#define CORE_HS_PROTECT_AGE_NS (1000ull * 1000000ull)
#define CORE_HS_PROTECT_NS (200ull * 1000000ull)
#define CORE_HS_STARVE_NS (20ull * 1000000ull) // a step waiting this long raises the thread
#define CORE_BUSY_POLL_US_MAX 1000u      // [proxy] busy_poll_us bound
#define CORE_STARTUP_BYTES_MAX 8192u      // StartupMessage size limit
#define CORE_SNIFF_BYTES_MAX 16u          // longest pre-startup packet we accept (CancelRequest)
#define CORE_TLS_RECORD_MAX (16u * 1024u)
#define CORE_TLS_STAGE_BYTES (CORE_TLS_RECORD_MAX + 4096u) // see core_shard.tls_stage
#define CORE_TLS_OVERHEAD_MAX 256u
#define CORE_NONCE_CAPACITY_MIN 16u              // [attestation] nonce_capacity bounds
#define CORE_NONCE_CAPACITY_MAX (16u * 1048576u) // 16 shards of the largest shard
#define CORE_NONCE_CAPACITY_DEFAULT 65536u

enum core_mode {
    CORE_MODE_TERMINATE = 0,
    CORE_MODE_PASSTHROUGH = 1,
};

struct core_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[CORE_NAME_MAX]; // "host:port" as written in the config
};

// Flat, pointer-free configuration (CONVENTIONS.md rule 11). Frozen after core_config_load.
// [proxy] handshake_thread: where TLS handshake steps run (core_hs.c).
enum core_hs_thread_mode {
    CORE_HS_THREAD_AUTO = 0, // on the handshake thread while established sessions move bytes
    CORE_HS_THREAD_ALWAYS,   // always on the handshake thread
    CORE_HS_THREAD_OFF,      // always on the worker, CORE_HS_STEPS_PER_TURN per loop turn
};

// [proxy] worker_priority: the scheduling class of the worker threads (core_prio.c).
enum core_worker_priority {
    CORE_PRIO_NORMAL = 0, // SCHED_OTHER, like every other process
    CORE_PRIO_REALTIME,   // SCHED_FIFO 1 while established sessions move bytes and the worker
                          // leaves room on its CPU for the rest
};

// [backend] health_check: how the active health checks probe each backend (core_health.c).
enum core_health_check {
    CORE_HEALTH_CONNECT = 0, // a TCP connect
    CORE_HEALTH_STARTUP,     // a StartupMessage as health_user, and the backend's first answer
    CORE_HEALTH_OFF,         // none: backends are judged by real sessions alone
};

struct core_config {
    char path[CORE_PATH_MAX]; // the config file itself
    // [proxy]
    char node_id[CORE_NAME_MAX];
    struct core_addr listen[CORE_LISTEN_MAX];
    uint32_t listen_count;
    enum core_mode mode;
    uint32_t workers; // 0 = auto (one per CPU in the affinity mask the process started with)
    uint32_t drain_timeout_ms;
    uint32_t conns_max;            // per worker
    uint32_t handshake_timeout_ms; // sniff + TLS handshake + startup
    uint32_t idle_timeout_ms;      // 0 = none
    enum core_hs_thread_mode handshake_thread; // where TLS handshake steps run
    enum core_worker_priority worker_priority;  // scheduling class of the workers
    uint32_t busy_poll_us; // a worker polls its ring this long before it sleeps; 0 = never
    // [tls]
    char tls_cert[CORE_PATH_MAX];
    char tls_key[CORE_PATH_MAX];
    char tls_client_ca[CORE_PATH_MAX];
    // [attestation]
    bool attestation_required;
    char attestation_policy[CORE_PATH_MAX];
    uint32_t nonce_capacity; // nonce table slots (power of two): live nonces at most
    // [backend]
    struct core_addr backends[CORE_BACKENDS_MAX];
    uint32_t backend_count;
    uint32_t connect_timeout_ms;
    uint32_t health_interval_ms;
    enum core_health_check health_check;
    char health_user[CORE_NAME_MAX];     // health_check = startup: the probe's user
    char health_database[CORE_NAME_MAX]; // and database ("" = the user's name)
    // [api]
    struct core_addr api_listen;
    bool api_enabled;
    char api_allow_origin[CORE_PATH_MAX]; // comma-separated origins allowed to read the API (CORS)
    char api_allow_hosts[CORE_PATH_MAX];  // comma-separated names accepted in the Host header
    // [audit] (terminate mode): every decision and disconnect, durably, before forwarding
    bool audit_enabled;
    struct store_config audit;
    // Config lines of the file-valued keys, for errors found after parsing (0 = not set).
    uint32_t line_tls_cert;
    uint32_t line_tls_key;
    uint32_t line_tls_client_ca;
    uint32_t line_attestation_policy;
    uint32_t line_audit_dir;
};

#ifdef __cplusplus
}
#endif

#endif // ATLS_CORE_TYPES_H
