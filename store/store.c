// store.c: audit store lifecycle (config, open/close, store thread start/stop), health,
// durability accessors and key encoding.
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_base.h"
#include "store_internal.h"

void store_config_defaults(struct store_config *cfg) {
    ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->dir, sizeof(cfg->dir), "%s", "/var/lib/atls-proxy/audit");
    cfg->sync = STORE_SYNC_ALWAYS;
    cfg->retention_days = 90;
    cfg->retention_max_records = 0;
    cfg->ring_slots_per_worker = 1024;
    cfg->batch_max = 256;
    cfg->retention_interval_ms = 60000;
}

int store_config_validate(char *err, size_t errlen, const struct store_config *cfg) {
    ASSERT(cfg != NULL);
    size_t dlen = strnlen(cfg->dir, sizeof(cfg->dir));
    if (dlen == 0 || dlen == sizeof(cfg->dir)) {
        snprintf(err, errlen, "[audit] dir: must be a path of 1..%u bytes",
                 STORE_DIR_BYTES_MAX - 1);
        return -EINVAL;
    }
    if (cfg->sync != STORE_SYNC_ALWAYS && cfg->sync != STORE_SYNC_BATCH) {
        snprintf(err, errlen, "[audit] sync: must be always or batch");
        return -EINVAL;
    }
    if (cfg->retention_days > STORE_RETENTION_DAYS_MAX) {
        snprintf(err, errlen, "[audit] retention_days: %u is above the maximum %u",
                 cfg->retention_days, STORE_RETENTION_DAYS_MAX);
        return -EINVAL;
    }
    uint32_t slots = cfg->ring_slots_per_worker;
    if (slots < STORE_RING_SLOTS_MIN || slots > STORE_RING_SLOTS_MAX || (slots & (slots - 1))) {
        snprintf(err, errlen, "[audit] ring_slots_per_worker: %u must be a power of two in %u..%u",
                 slots, STORE_RING_SLOTS_MIN, STORE_RING_SLOTS_MAX);
        return -EINVAL;
    }
    if (cfg->batch_max < 1 || cfg->batch_max > STORE_BATCH_MAX_MAX) {
        snprintf(err, errlen, "[audit] batch_max: %u must be in 1..%u", cfg->batch_max,
                 STORE_BATCH_MAX_MAX);
        return -EINVAL;
    }
    if (cfg->retention_interval_ms < STORE_RETENTION_INTERVAL_MS_MIN) {
        snprintf(err, errlen, "[audit] retention_interval_ms: %u is below the minimum %u",
                 cfg->retention_interval_ms, STORE_RETENTION_INTERVAL_MS_MIN);
        return -EINVAL;
    }
    return 0;
}

// check_dir makes sure `dir` is a writable directory, creating it (not its parents).
static int check_dir(char *err, size_t errlen, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) {
            int rc = -errno;
            snprintf(err, errlen, "audit dir %s: %s", dir, strerror(errno));
            return rc;
        }
        if (mkdir(dir, 0750) != 0) {
            int rc = -errno;
            snprintf(err, errlen, "audit dir %s: cannot create it: %s%s", dir, strerror(errno),
                     rc == -ENOENT ? " (the parent directory does not exist)" : "");
            return rc;
        }
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "audit dir %s: exists but is not a directory", dir);
        return -ENOTDIR;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "audit dir %s: not writable: %s", dir, strerror(errno));
        return rc;
    }
    return 0;
}

static void store_free_all(struct store *s) {
    if (s == NULL) {
        return;
    }
    ASSERT(!s->thread_started);
    if (s->rings != NULL) {
        for (uint32_t w = 0; w < s->workers; w++) {
            store_ring_cleanup(&s->rings[w]);
        }
        free(s->rings);
        s->rings = NULL;
    }
    if (s->wake_efd >= 0) {
        close(s->wake_efd);
        s->wake_efd = -1;
    }
    store_rocksdb_batch_free(s->batch);
    s->batch = NULL;
    store_rocksdb_close(s->db);
    s->db = NULL;
    free(s->arena_buf);
    s->arena_buf = NULL;
    free(s->value_buf);
    s->value_buf = NULL;
    free(s->taken);
    s->taken = NULL;
    store_counts_free(s->counts);
    s->counts = NULL;
    free(s);
}

static struct store *store_alloc(void) {
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->wake_efd = -1;
    atomic_init(&s->sleeping, false);
    atomic_init(&s->stop, false);
    atomic_init(&s->retention_requested, false);
    atomic_init(&s->paused, false);
    atomic_init(&s->health_err, 0);
    atomic_init(&s->first_global_seq, 1);
    return s;
}

int store_open(struct store **out_store, char *err, size_t errlen, const struct store_config *cfg,
               uint32_t workers) {
    return store_open_with_counts(out_store, err, errlen, cfg, workers, STORE_COUNTS_ENTRIES_MAX);
}

// open_counts builds the decision counts with one scan of the measurement index. The staging
// area takes the largest batch the store thread writes: a ring drain or a retention batch.
static int open_counts(struct store *s, char *err, size_t errlen, uint32_t counts_max) {
    uint32_t staged_max = s->cfg.batch_max > STORE_RETENTION_DELETE_BATCH_MAX
                              ? s->cfg.batch_max
                              : STORE_RETENTION_DELETE_BATCH_MAX;
    s->counts = store_counts_new(counts_max, staged_max);
    if (s->counts == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return -ENOMEM;
    }
    char why[STORE_ERR_BYTES] = "";
    int rc = store_counts_load(s->counts, why, sizeof(why), s->db);
    if (rc != 0) {
        snprintf(err, errlen, "audit store %s: measurement index unreadable: %s", s->cfg.dir, why);
    }
    return rc;
}

int store_open_with_counts(struct store **out_store, char *err, size_t errlen,
                           const struct store_config *cfg, uint32_t workers, uint32_t counts_max) {
    ASSERT(out_store != NULL);
    ASSERT(cfg != NULL);
    ASSERT(counts_max >= 1);
    *out_store = NULL;
    int rc = store_config_validate(err, errlen, cfg);
    if (rc != 0) {
        return rc;
    }
    if (workers < 1 || workers > STORE_WORKERS_MAX) {
        snprintf(err, errlen, "store: %u workers is outside 1..%u", workers, STORE_WORKERS_MAX);
        return -EINVAL;
    }
    rc = check_dir(err, errlen, cfg->dir);
    if (rc != 0) {
        return rc;
    }
    struct store *s = store_alloc();
    if (s == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return -ENOMEM;
    }
    s->cfg = *cfg;
    rc = store_rocksdb_open(&s->db, err, errlen, cfg->dir, false);
    if (rc != 0) {
        goto out_free;
    }
    rc = store_audit_load_chain(s, err, errlen);
    if (rc != 0) {
        goto out_free;
    }
    rc = open_counts(s, err, errlen, counts_max);
    if (rc != 0) {
        goto out_free;
    }
    s->rings = calloc(workers, sizeof(*s->rings));
    s->taken = calloc(workers, sizeof(*s->taken));
    s->arena_buf = aligned_alloc(64, STORE_ARENA_BYTES);
    s->value_buf = malloc(STORE_VALUE_BYTES_MAX);
    s->batch = store_rocksdb_batch_new();
    if (s->rings == NULL || s->taken == NULL || s->arena_buf == NULL || s->value_buf == NULL ||
        s->batch == NULL) {
        snprintf(err, errlen, "store: out of memory");
        rc = -ENOMEM;
        goto out_free;
    }
    proto_arena_init(&s->arena, s->arena_buf, STORE_ARENA_BYTES);
    for (uint32_t w = 0; w < workers; w++) {
        s->rings[w].durable_efd = -1;
    }
    s->workers = workers; // from here store_free_all cleans up every ring
    for (uint32_t w = 0; w < workers; w++) {
        rc = store_ring_init(&s->rings[w], cfg->ring_slots_per_worker);
        if (rc != 0) {
            snprintf(err, errlen, "store: ring %u: %s", w, strerror(-rc));
            goto out_free;
        }
    }
    s->wake_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_efd < 0) {
        rc = -errno;
        snprintf(err, errlen, "store: eventfd: %s", strerror(errno));
        goto out_free;
    }
    int prc = pthread_create(&s->thread, NULL, store_audit_thread_main, s);
    if (prc != 0) {
        rc = -prc;
        snprintf(err, errlen, "store: cannot start the store thread: %s", strerror(prc));
        goto out_free;
    }
    s->thread_started = true;
    *out_store = s;
    return 0;

out_free:
    store_free_all(s);
    return rc;
}

int store_open_readonly_raw(struct store **out_store, char *err, size_t errlen, const char *dir,
                            bool load_chain) {
    ASSERT(out_store != NULL);
    ASSERT(dir != NULL);
    *out_store = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "audit dir %s: %s", dir, strerror(errno));
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "audit dir %s: not a directory", dir);
        return -ENOTDIR;
    }
    struct store *s = store_alloc();
    if (s == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return -ENOMEM;
    }
    s->read_only = true;
    snprintf(s->cfg.dir, sizeof(s->cfg.dir), "%s", dir);
    int rc = store_rocksdb_open(&s->db, err, errlen, dir, true);
    if (rc != 0) {
        if (rc == -ENOENT || rc == -EIO) {
            char tmp[STORE_ERR_BYTES];
            snprintf(tmp, sizeof(tmp), "%s", err);
            snprintf(err, errlen, "no readable audit database in %s (%s)", dir, tmp);
        }
        goto out_free;
    }
    if (load_chain) {
        rc = store_audit_load_chain(s, err, errlen);
        if (rc != 0) {
            goto out_free;
        }
    }
    *out_store = s;
    return 0;

out_free:
    store_free_all(s);
    return rc;
}

int store_open_readonly(struct store **out_store, char *err, size_t errlen, const char *dir) {
    return store_open_readonly_raw(out_store, err, errlen, dir, true);
}

void store_close(struct store *store) {
    if (store == NULL) {
        return;
    }
    if (store->thread_started) {
        atomic_store(&store->stop, true);
        uint64_t one = 1;
        ssize_t n = write(store->wake_efd, &one, sizeof(one));
        (void)n; // a full eventfd counter already wakes the thread
        int prc = pthread_join(store->thread, NULL);
        ASSERT(prc == 0);
        store->thread_started = false;
    }
    store_free_all(store);
}

void store_set_unhealthy(struct store *store, int rc, const char *fmt, ...) {
    ASSERT(rc < 0);
    if (atomic_load(&store->health_err) != 0) {
        return; // keep the first failure: it is the cause
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(store->health_msg, sizeof(store->health_msg), fmt, ap);
    va_end(ap);
    LOG_ERROR("audit store unhealthy (fail closed): %s", store->health_msg);
    atomic_store_explicit(&store->health_err, rc, memory_order_release);
}

bool store_is_healthy(const struct store *store) {
    ASSERT(store != NULL);
    return atomic_load_explicit(&store->health_err, memory_order_acquire) == 0;
}

int store_health_error(const struct store *store, char *err, size_t errlen) {
    ASSERT(store != NULL);
    int rc = atomic_load_explicit(&store->health_err, memory_order_acquire);
    if (rc != 0 && err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", store->health_msg);
    }
    return rc;
}

uint64_t store_durable_seq(const struct store *store, uint32_t worker) {
    ASSERT(store != NULL);
    ASSERT(worker < store->workers);
    return atomic_load_explicit(&store->rings[worker].durable_seq, memory_order_acquire);
}

int store_worker_eventfd(const struct store *store, uint32_t worker) {
    ASSERT(store != NULL);
    ASSERT(worker < store->workers);
    return store->rings[worker].durable_efd;
}

void store_stats(const struct store *store, struct store_stats *out) {
    ASSERT(store != NULL);
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    for (uint32_t w = 0; w < store->workers; w++) {
        out->ring_full += atomic_load_explicit(&store->rings[w].ring_full, memory_order_relaxed);
    }
    out->records_written = atomic_load(&store->records_written);
    out->batches_written = atomic_load(&store->batches_written);
    out->corrupt_slots = atomic_load(&store->corrupt_slots);
    out->retention_deleted = atomic_load(&store->retention_deleted);
    out->retention_runs = atomic_load(&store->retention_runs);
    out->head_global_seq = atomic_load(&store->head_global_seq);
    out->first_global_seq = atomic_load(&store->first_global_seq);
    if (store->db != NULL) {
        out->memtable_bytes = store_rocksdb_memtable_bytes(store->db);
    }
}

void store_set_paused(struct store *store, bool paused) {
    ASSERT(store != NULL);
    atomic_store(&store->paused, paused);
    uint64_t one = 1;
    ssize_t n = write(store->wake_efd, &one, sizeof(one));
    (void)n; // EAGAIN: the counter is already non-zero, the thread will wake
}

void store_retention_request(struct store *store) {
    ASSERT(store != NULL);
    ASSERT(!store->read_only);
    atomic_store(&store->retention_requested, true);
    uint64_t one = 1;
    ssize_t n = write(store->wake_efd, &one, sizeof(one));
    (void)n; // EAGAIN: the counter is already non-zero, the thread will wake
}

void store_be64_put(uint8_t *out, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_be64_get(const uint8_t *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

void store_be32_put(uint8_t *out, uint32_t v) {
    for (int i = 3; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint32_t store_be32_get(const uint8_t *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

void store_key_encode(uint8_t out[STORE_KEY_BYTES], const struct store_key *key) {
    ASSERT(key != NULL);
    store_be64_put(out, key->time_ns);
    store_be32_put(out + 8, key->worker);
    store_be64_put(out + 12, key->seq);
}

int store_key_decode(struct store_key *out_key, const uint8_t *in, size_t len) {
    ASSERT(out_key != NULL);
    if (in == NULL || len != STORE_KEY_BYTES) {
        return -EINVAL;
    }
    out_key->time_ns = store_be64_get(in);
    out_key->worker = store_be32_get(in + 8);
    out_key->seq = store_be64_get(in + 12);
    return 0;
}

void store_key_format(char out[STORE_CURSOR_BYTES], const struct store_key *key) {
    uint8_t raw[STORE_KEY_BYTES];
    store_key_encode(raw, key);
    core_base_hex_encode(out, raw, sizeof(raw));
}

int store_key_parse(struct store_key *out_key, const char *text) {
    ASSERT(out_key != NULL);
    uint8_t raw[STORE_KEY_BYTES];
    if (text == NULL || strlen(text) != 2 * STORE_KEY_BYTES ||
        core_base_hex_decode(raw, sizeof(raw), text) != 0) {
        return -EINVAL;
    }
    return store_key_decode(out_key, raw, sizeof(raw));
}
