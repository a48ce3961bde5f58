// core.c: main(): load config -> build TLS context -> start one pinned worker per core ->
// handle signals (SIGTERM/SIGINT drain, SIGHUP reload) -> join -> exit.
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core_internal.h"
#include "policy.h"
#include "store.h"

static void usage(FILE *out) {
    fputs("usage: atls-proxy --config FILE          run the gateway\n"
          "       atls-proxy --check-config FILE    validate config and policy, exit 0 or 2\n"
          "       atls-proxy --version\n",
          out);
}

static int load_policy(struct core_policy **out, char *err, size_t err_len, const char *path);

// check_audit_dir: the audit directory exists and is writable, or can be created. Sets errno.
static int check_audit_dir(const char *dir) {
    if (access(dir, W_OK | X_OK) == 0) {
        return 0;
    }
    if (errno != ENOENT) {
        return -1;
    }
    char parent[STORE_DIR_BYTES_MAX];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        snprintf(parent, sizeof(parent), ".");
    } else if (slash == parent) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    return access(parent, W_OK | X_OK);
}

static int check_config(const char *path) {
    struct core_config cfg;
    char err[512];
    if (core_config_load(&cfg, err, sizeof(err), path) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (cfg.mode == CORE_MODE_TERMINATE) {
        SSL_CTX *ctx = core_tls_ctx_new(&cfg, err, sizeof(err));
        if (ctx == NULL) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        SSL_CTX_free(ctx);
        if (cfg.attestation_required) {
            struct core_policy *p = NULL;
            if (load_policy(&p, err, sizeof(err), cfg.attestation_policy) != 0) {
                fprintf(stderr, "%s\n", err);
                return 2;
            }
            free(p);
        }
        if (cfg.audit_enabled && check_audit_dir(cfg.audit.dir) != 0) {
            if (cfg.line_audit_dir > 0) {
                fprintf(stderr, "%s:%u: [audit] dir %s: %s\n", path, cfg.line_audit_dir,
                        cfg.audit.dir, strerror(errno));
            } else {
                fprintf(stderr, "%s: [audit] dir %s (the default; set [audit] dir): %s\n", path,
                        cfg.audit.dir, strerror(errno));
            }
            return 2;
        }
    }
    printf("%s: ok\n", path);
    return 0;
}

// Limits of the shared attestation tables (sized for a busy gateway; memory is allocated once).
// The nonce table holds [attestation] nonce_capacity slots in up to NONCE_SHARDS shards of at
// least NONCE_SHARD_SLOTS_MIN slots (a nonce may live only within one shard's probe window).
#define NONCE_SHARDS 16u
#define NONCE_SHARD_SLOTS_MIN 16u
#define REUSE_SLOTS 4096u
#define NONCE_RATE_BUCKETS 1024u
#define NONCE_RATE_BURST 64u
#define NONCE_RATE_PER_S 32u

// load_policy reads the policy file into a new, not yet published core_policy (epoch 0).
static int load_policy(struct core_policy **out, char *err, size_t err_len, const char *path) {
    struct core_policy *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    int ret = policy_rules_load_file(&p->policy, err, err_len, path);
    if (ret != 0) {
        free(p);
        return ret;
    }
    *out = p;
    return 0;
}

static int attestation_setup(struct core_proc *proc, char *err, size_t err_len) {
    struct core_policy *p = NULL;
    int ret = load_policy(&p, err, err_len, proc->cfg.attestation_policy);
    if (ret != 0) {
        return ret;
    }
    p->epoch = ++proc->policy_epoch_last;
    atomic_store(&proc->policy, p);
    uint32_t capacity = proc->cfg.nonce_capacity;
    ASSERT(capacity >= NONCE_SHARD_SLOTS_MIN && (capacity & (capacity - 1)) == 0);
    uint32_t shards = capacity / NONCE_SHARD_SLOTS_MIN;
    shards = shards < NONCE_SHARDS ? shards : NONCE_SHARDS;
    if (policy_nonce_new(&proc->nonces, shards, capacity / shards) != 0 ||
        policy_reuse_new(&proc->reuse, REUSE_SLOTS) != 0 ||
        policy_ratelimit_new(&proc->nonce_limiter, NONCE_RATE_BUCKETS, NONCE_RATE_BURST,
                             NONCE_RATE_PER_S) != 0) {
        snprintf(err, err_len, "cannot allocate the nonce tables");
        return -ENOMEM;
    }
    return 0;
}

// policy_reclaim frees every retired policy that no thread can read any more: each worker reads
// only the policy of its adopted epoch (published with release once it let go of older ones),
// and the API thread only the one its hazard names. Main thread only.
static void policy_reclaim(struct core_proc *proc) {
    uint64_t oldest = UINT64_MAX;
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        uint64_t e =
            atomic_load_explicit(&proc->shards[i].policy_epoch_adopted, memory_order_acquire);
        oldest = e < oldest ? e : oldest;
    }
    // Read after the policy was replaced (seq_cst): an API request that loaded a retired policy
    // has published it here already, or will see the new one when it checks again.
    const struct core_policy *hazard = atomic_load(&proc->policy_api_hazard);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < proc->policy_retired_len; i++) {
        const struct core_policy *r = proc->policy_retired[i];
        if (r->epoch < oldest && r != hazard) {
            free((void *)r);
            continue;
        }
        proc->policy_retired[kept++] = r;
    }
    for (uint32_t i = kept; i < proc->policy_retired_len; i++) {
        proc->policy_retired[i] = NULL;
    }
    proc->policy_retired_len = kept;
}

// reload_policy loads the policy file again; a broken file keeps the current policy. Workers
// adopt the new one on their next event and re-judge their live sessions; the policy it
// replaces is retired and freed at a later reload (or at exit) once nothing reads it.
static void reload_policy(struct core_proc *proc) {
    const struct core_policy *cur = atomic_load(&proc->policy);
    if (cur == NULL) {
        return;
    }
    policy_reclaim(proc);
    if (proc->policy_retired_len == CORE_POLICY_RETIRED_MAX) {
        // Only when a worker has not adopted any of the last CORE_POLICY_RETIRED_MAX policies
        // (a stuck worker): the next reload retries.
        LOG_ERROR("policy reload refused: %u replaced policies are still read by a worker that "
                  "has not adopted a newer one",
                  proc->policy_retired_len);
        return;
    }
    char err[512];
    struct core_policy *p = NULL;
    if (load_policy(&p, err, sizeof(err), proc->cfg.attestation_policy) != 0) {
        LOG_ERROR("policy reload failed, keeping the current policy: %s", err);
        return;
    }
    // Check the roots load before publishing, so no worker is left without a verifier.
    if (core_attest_check_roots(p, err, sizeof(err), proc->cfg.attestation_policy) !=
        0) {
        LOG_ERROR("policy reload failed, keeping the current policy: %s", err);
        free(p);
        return;
    }
    p->epoch = ++proc->policy_epoch_last;
    ASSERT(p->epoch > cur->epoch);
    const struct core_policy *old = atomic_exchange(&proc->policy, p);
    ASSERT(old == cur); // only this thread publishes
    proc->policy_retired[proc->policy_retired_len++] = old;
    LOG_INFO("policy %s loaded from %s", p->policy.version, proc->cfg.attestation_policy);
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        core_shard_wake(&proc->shards[i]);
    }
}

static void reload_tls(struct core_proc *proc) {
    char err[512];
    SSL_CTX *ctx = core_tls_ctx_new(&proc->cfg, err, sizeof(err));
    if (ctx == NULL) {
        LOG_ERROR("reload failed, keeping the current certificate: %s", err);
        return;
    }
    for (uint32_t i = 0; i < proc->worker_count; i++) {
        SSL_CTX_up_ref(ctx);
        SSL_CTX *old = atomic_exchange(&proc->shards[i].ssl_ctx_next, ctx);
        SSL_CTX_free(old); // a reload the worker had not picked up yet
        core_shard_wake(&proc->shards[i]);
    }
    SSL_CTX_free(ctx);
    LOG_INFO("reloaded certificate %s", proc->cfg.tls_cert);
}

// usable_cpus: how many CPUs this process may run on (taskset, cpusets, systemd
// CPUAffinity=), which `workers = auto` follows; online CPUs when the mask cannot be read.
static uint32_t usable_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        return (uint32_t)CPU_COUNT(&set);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu > 0 ? (uint32_t)ncpu : 1u;
}

// stop_all stops the first `started` workers, the health checks and the API, and closes the
// audit store, writing every record already queued. `at_once`: a start-up failure, so the
// workers get no drain time (they may have taken connections since they started listening).
static void stop_all(struct core_proc *proc, uint32_t started, bool at_once) {
    if (at_once) {
        proc->drain_deadline_ns = core_base_now_ns();
        atomic_store(&proc->draining, true);
        for (uint32_t i = 0; i < started; i++) {
            core_shard_wake(&proc->shards[i]);
        }
    }
    // Every worker stops before any ring closes: a draining worker may still route a cancel to
    // another's ring (MSG_RING), whose descriptor must stay open until then.
    for (uint32_t i = 0; i < started; i++) {
        core_shard_wait(&proc->shards[i]);
    }
    core_health_stop(proc);
    // The API thread wakes workers (snapshots for /api/v1/clients/active) through their event
    // descriptors and reads their snapshot buffers: it stops before the joins free them.
    core_api_stop(proc);
    for (uint32_t i = 0; i < started; i++) {
        core_shard_join(&proc->shards[i]);
    }
    store_close(proc->store);
    proc->store = NULL;
    free(proc->shards);
    proc->shards = NULL;
}

static int run(const char *path) {
    static struct core_proc proc; // large; lives for the whole process
    char err[512];
    if (core_config_load(&proc.cfg, err, sizeof(err), path) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (proc.cfg.attestation_required && proc.cfg.tls_client_ca[0] != '\0') {
        LOG_WARN("%s: [tls] client_ca is not used: with [attestation] required = true every "
                 "client needs attestation evidence",
                 path);
    }
    if (proc.cfg.attestation_required && proc.cfg.mode == CORE_MODE_TERMINATE) {
        if (attestation_setup(&proc, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    }
    SSL_CTX *ctx = NULL;
    if (proc.cfg.mode == CORE_MODE_TERMINATE) {
        ctx = core_tls_ctx_new(&proc.cfg, err, sizeof(err));
        if (ctx == NULL) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
    } else {
        // Passthrough never terminates TLS, but the shard code keeps one context reference.
        ctx = SSL_CTX_new(TLS_method());
    }
    proc.worker_count = proc.cfg.workers ? proc.cfg.workers : usable_cpus();
    if (proc.worker_count > CORE_WORKERS_MAX) {
        proc.worker_count = CORE_WORKERS_MAX;
    }
    // Before any thread exists (the store's and RocksDB's included): every thread inherits the
    // mask, so the signals reach only the signalfd below.
    // A shell starting us in the background sets SIGINT to "ignore", and an ignored signal is
    // discarded even when blocked: restore the defaults so the signalfd sees every one.
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &mask, NULL); // workers inherit the mask
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (proc.cfg.mode == CORE_MODE_TERMINATE && proc.cfg.audit_enabled) {
        // Before any worker: an admitted session always has its record (fail closed).
        if (store_open(&proc.store, err, sizeof(err), &proc.cfg.audit, proc.worker_count) != 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            SSL_CTX_free(ctx);
            return 2;
        }
    } else if (proc.cfg.mode == CORE_MODE_TERMINATE) {
        LOG_WARN("[audit] enabled = false: decisions are NOT recorded");
    }
    proc.shards = calloc(proc.worker_count, sizeof(*proc.shards));
    proc.started_ns = core_base_now_ns();


    for (uint32_t i = 0; i < proc.worker_count; i++) {
        if (core_shard_start(&proc, &proc.shards[i], i, ctx, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", path, err);
            SSL_CTX_free(ctx);
            stop_all(&proc, i, true);
            return 2;
        }
    }
    SSL_CTX_free(ctx);
    if (core_api_start(&proc, err, sizeof(err)) != 0 ||
        core_health_start(&proc, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        stop_all(&proc, proc.worker_count, true);
        return 2;
    }
    LOG_INFO("atls-proxy %s: %u workers, listening on %s (%s), backend %s", proc.cfg.node_id,
             proc.worker_count, proc.cfg.listen[0].text,
             proc.cfg.mode == CORE_MODE_TERMINATE ? "terminate" : "passthrough",
             proc.cfg.backends[0].text);
    // Readiness line for scripts and tests.
    printf("ready\n");
    fflush(stdout);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            continue;
        }
        if (si.ssi_signo == SIGHUP) {
            reload_policy(&proc); // before the wake-up that reload_tls sends to every worker
            reload_tls(&proc);
            continue;
        }
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            LOG_INFO("signal %u: draining (deadline %u ms)", si.ssi_signo,
                     proc.cfg.drain_timeout_ms);
            proc.drain_deadline_ns =
                core_base_now_ns() + (uint64_t)proc.cfg.drain_timeout_ms * 1000000ull;
            atomic_store(&proc.draining, true);
            for (uint32_t i = 0; i < proc.worker_count; i++) {
                core_shard_wake(&proc.shards[i]);
            }
            break;
        }
    }
    stop_all(&proc, proc.worker_count, false);
    policy_nonce_free(proc.nonces);
    policy_reuse_free(proc.reuse);
    policy_ratelimit_free(proc.nonce_limiter);
    // Every thread that read policies is joined or stopped.
    for (uint32_t i = 0; i < proc.policy_retired_len; i++) {
        free((void *)proc.policy_retired[i]);
        proc.policy_retired[i] = NULL;
    }
    free((void *)atomic_exchange(&proc.policy, NULL));
    close(sfd);
    LOG_INFO("drained, exiting");
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    const char *check = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = optarg;
            break;
        case 'v':
            printf("atls-proxy 0.1.0\n");
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (getenv("ATLS_DEBUG") != NULL) {
        core_base_log_set_level(CORE_LOG_DEBUG);
    }
    if (check != NULL) {
        return check_config(check);
    }
    if (config == NULL) {
        usage(stderr);
        return 2;
    }
    return run(config);
}
