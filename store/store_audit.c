// store_audit.c: the audit trail proper — producer push, the store thread (drain the rings,
// hash-chain, batch-append, acknowledge), retention with a chain anchor, and chain verification.
#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "core_base.h"
#include "store_internal.h"

#define SLEEP_MAX_MS 1000

bool store_audit_record_is_valid(const Atls__AuditRecord *rec) {
    if (rec == NULL) {
        return false;
    }
    if (rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION &&
        rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT) {
        return false;
    }
    if (rec->time_ns == 0) {
        return false;
    }
    if (rec->measurement.len != 0 && rec->measurement.len != STORE_MEASUREMENT_BYTES) {
        return false;
    }
    if ((unsigned)rec->verdict >= STORE_VERDICT_SLOTS) {
        return false;
    }
    if (rec->kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION &&
        rec->verdict == ATLS__VERDICT__VERDICT_UNSPECIFIED) {
        return false;
    }
    return true;
}

// ---- Producer ----

static void wake_store_thread(struct store *s) {
    // seq_cst pairs with the store thread's `sleeping = true; recheck rings` (store_ring.c).
    if (atomic_load(&s->sleeping)) {
        uint64_t one = 1;
        ssize_t n = write(s->wake_efd, &one, sizeof(one));
        (void)n; // EAGAIN: counter already non-zero, the thread wakes anyway
    }
}

int store_audit_push(struct store *store, uint64_t *out_seq, uint32_t worker,
                     const Atls__AuditRecord *rec) {
    ASSERT(store != NULL);
    ASSERT(out_seq != NULL);
    ASSERT(!store->read_only);
    ASSERT(worker < store->workers);
    *out_seq = 0;
    int herr = atomic_load_explicit(&store->health_err, memory_order_acquire);
    if (herr != 0) {
        return herr;
    }
    if (!store_audit_record_is_valid(rec)) {
        return -EINVAL;
    }
    struct store_ring *ring = &store->rings[worker];
    struct store_slot_hdr *slot = store_ring_reserve(ring);
    if (slot == NULL) {
        atomic_fetch_add_explicit(&ring->ring_full, 1, memory_order_relaxed);
        return -EAGAIN;
    }
    size_t len = 0;
    int rc = proto_pack((uint8_t *)(slot + 1), &len, STORE_SLOT_PAYLOAD_MAX, &rec->base);
    if (rc != 0) {
        return rc;
    }
    slot->len = (uint32_t)len;
    slot->magic = STORE_SLOT_MAGIC;
    slot->seq = atomic_load_explicit(&ring->head, memory_order_relaxed) + 1;
    uint64_t seq = store_ring_publish(ring);
    ASSERT(seq == slot->seq);
    wake_store_thread(store);
    *out_seq = seq;
    return 0;
}

uint32_t store_ring_free(const struct store *store, uint32_t worker) {
    ASSERT(store != NULL && worker < store->workers);
    return store_ring_free_slots(&store->rings[worker]);
}

int store_ring_push_raw(struct store *store, uint64_t *out_seq, uint32_t worker,
                        const uint8_t *data, size_t len) {
    ASSERT(worker < store->workers);
    ASSERT(len <= STORE_SLOT_PAYLOAD_MAX);
    struct store_ring *ring = &store->rings[worker];
    struct store_slot_hdr *slot = store_ring_reserve(ring);
    if (slot == NULL) {
        return -EAGAIN;
    }
    memcpy(slot + 1, data, len);
    slot->len = (uint32_t)len;
    slot->magic = STORE_SLOT_MAGIC;
    slot->seq = atomic_load_explicit(&ring->head, memory_order_relaxed) + 1;
    *out_seq = store_ring_publish(ring);
    wake_store_thread(store);
    return 0;
}

// ---- Store thread ----

static void meas_key(uint8_t out[STORE_MEAS_KEY_BYTES], const Atls__AuditRecord *rec,
                     const uint8_t key[STORE_KEY_BYTES]) {
    memset(out, 0, STORE_MEASUREMENT_BYTES);
    if (rec->measurement.len == STORE_MEASUREMENT_BYTES) {
        memcpy(out, rec->measurement.data, STORE_MEASUREMENT_BYTES);
    }
    store_be32_put(out + STORE_MEASUREMENT_BYTES, (uint32_t)rec->verdict);
    memcpy(out + STORE_MEASUREMENT_BYTES + 4, key, STORE_KEY_BYTES);
}

static void verdict_key(uint8_t out[STORE_VERDICT_KEY_BYTES], const Atls__AuditRecord *rec,
                        const uint8_t key[STORE_KEY_BYTES]) {
    store_be32_put(out, (uint32_t)rec->verdict);
    memcpy(out + 4, key, STORE_KEY_BYTES);
}

// append_slot decodes one slot, fills the chain fields and adds the record and its index
// entries to the batch. Returns 0 or -EBADMSG for a slot that is not a valid record.
static int append_slot(struct store *s, uint32_t worker, const struct store_slot_hdr *hdr,
                       uint64_t expect_seq) {
    if (hdr->magic != STORE_SLOT_MAGIC || hdr->len > STORE_SLOT_PAYLOAD_MAX ||
        hdr->seq != expect_seq) {
        return -EBADMSG;
    }
    proto_arena_reset(&s->arena);
    ProtobufCMessage *m = NULL;
    int rc = proto_unpack(&s->arena, &m, &atls__audit_record__descriptor,
                          (const uint8_t *)(hdr + 1), hdr->len);
    if (rc != 0) {
        return -EBADMSG;
    }
    Atls__AuditRecord *rec = (Atls__AuditRecord *)m;
    if (!store_audit_record_is_valid(rec)) {
        return -EBADMSG;
    }
    rec->worker = worker;
    rec->seq = hdr->seq;
    rec->global_seq = s->next_global_seq;
    rec->prev_sha256.len = STORE_SHA256_BYTES;
    rec->prev_sha256.data = s->last_digest;
    size_t vlen = 0;
    rc = proto_pack(s->value_buf, &vlen, STORE_VALUE_BYTES_MAX, &rec->base);
    ASSERT(rc == 0); // a slot payload plus the chain fields always fits STORE_VALUE_BYTES_MAX

    uint8_t key[STORE_KEY_BYTES];
    struct store_key k = {.time_ns = rec->time_ns, .worker = worker, .seq = hdr->seq};
    store_key_encode(key, &k);
    uint8_t chain_key[8];
    uint8_t chain_val[STORE_CHAIN_VALUE_BYTES];
    store_be64_put(chain_key, rec->global_seq);
    memcpy(chain_val, key, STORE_KEY_BYTES);
    SHA256(s->value_buf, vlen, chain_val + STORE_KEY_BYTES);

    store_rocksdb_batch_put(s->db, s->batch, STORE_CF_RECORDS, key, sizeof(key), s->value_buf,
                            vlen);
    store_rocksdb_batch_put(s->db, s->batch, STORE_CF_CHAIN, chain_key, sizeof(chain_key),
                            chain_val, sizeof(chain_val));
    if (rec->kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
        uint8_t vk[STORE_VERDICT_KEY_BYTES];
        uint8_t mk[STORE_MEAS_KEY_BYTES];
        verdict_key(vk, rec, key);
        meas_key(mk, rec, key);
        store_rocksdb_batch_put(s->db, s->batch, STORE_CF_BY_VERDICT, vk, sizeof(vk), NULL, 0);
        store_rocksdb_batch_put(s->db, s->batch, STORE_CF_BY_MEASUREMENT, mk, sizeof(mk), NULL,
                                0);
        store_counts_stage(s->counts, mk, +1); // counted once the batch is written
    }
    memcpy(s->last_digest, chain_val + STORE_KEY_BYTES, STORE_SHA256_BYTES);
    s->next_global_seq++;
    return 0;
}

static void put_head(struct store *s) {
    uint8_t v[STORE_META_POS_BYTES];
    store_be64_put(v, s->next_global_seq - 1);
    memcpy(v + 8, s->last_digest, STORE_SHA256_BYTES);
    store_rocksdb_batch_put(s->db, s->batch, STORE_CF_META, (const uint8_t *)STORE_META_HEAD,
                            strlen(STORE_META_HEAD), v, sizeof(v));
}

// take_slots moves up to `budget` slots of ring `w` into the batch; returns slots consumed.
static uint32_t take_slots(struct store *s, uint32_t w, uint32_t budget) {
    struct store_ring *ring = &s->rings[w];
    uint32_t n = 0;
    while (n < budget) {
        const struct store_slot_hdr *hdr = store_ring_peek(ring, s->taken[w]);
        if (hdr == NULL) {
            break;
        }
        uint64_t expect = atomic_load_explicit(&ring->tail, memory_order_relaxed) +
                          s->taken[w] + 1;
        if (append_slot(s, w, hdr, expect) != 0) {
            atomic_fetch_add(&s->corrupt_slots, 1);
            if (ring->poison_seq == 0) {
                ring->poison_seq = expect;
            }
            store_set_unhealthy(s, -EBADMSG,
                                "worker %u seq %" PRIu64 ": ring slot is not a valid audit record",
                                w, expect);
        }
        s->taken[w]++;
        n++;
    }
    return n;
}

static void acknowledge(struct store *s) {
    for (uint32_t w = 0; w < s->workers; w++) {
        if (s->taken[w] == 0) {
            continue;
        }
        struct store_ring *ring = &s->rings[w];
        store_ring_release(ring, s->taken[w]);
        s->taken[w] = 0;
        uint64_t durable = atomic_load_explicit(&ring->tail, memory_order_relaxed);
        if (ring->poison_seq != 0 && durable >= ring->poison_seq) {
            durable = ring->poison_seq - 1; // never acknowledge past a record that was lost
        }
        if (durable > atomic_load_explicit(&ring->durable_seq, memory_order_relaxed)) {
            atomic_store_explicit(&ring->durable_seq, durable, memory_order_release);
            uint64_t one = 1;
            ssize_t n = write(ring->durable_efd, &one, sizeof(one));
            (void)n; // EAGAIN only when the counter would overflow: the worker is signalled
        }
    }
}

// drain_batch builds one write batch from the rings (round-robin, at most batch_max records),
// commits it, then acknowledges. Returns slots consumed (0 when idle or unhealthy).
static uint32_t drain_batch(struct store *s) {
    // A close drains even a paused store: every pushed record is written before it returns.
    if (!store_is_healthy(s) || (atomic_load(&s->paused) && !atomic_load(&s->stop))) {
        return 0;
    }
    uint64_t saved_gseq = s->next_global_seq;
    uint8_t saved_digest[STORE_SHA256_BYTES];
    memcpy(saved_digest, s->last_digest, sizeof(saved_digest));
    store_rocksdb_batch_clear(s->batch);
    store_counts_discard(s->counts);
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->workers && n < s->cfg.batch_max; k++) {
        n += take_slots(s, (s->rr_next + k) % s->workers, s->cfg.batch_max - n);
    }
    s->rr_next = (s->rr_next + 1) % s->workers;
    if (n == 0) {
        return 0;
    }
    uint64_t written = s->next_global_seq - saved_gseq;
    if (written > 0) {
        put_head(s);
        char err[STORE_ERR_BYTES];
        int rc = store_rocksdb_write(s->db, err, sizeof(err), s->batch,
                                     s->cfg.sync == STORE_SYNC_ALWAYS);
        if (rc != 0) {
            // Nothing of the batch is on disk: roll the chain back and keep the slots unacked.
            s->next_global_seq = saved_gseq;
            memcpy(s->last_digest, saved_digest, sizeof(saved_digest));
            memset(s->taken, 0, s->workers * sizeof(*s->taken));
            store_counts_discard(s->counts);
            store_set_unhealthy(s, rc, "%s", err);
            return 0;
        }
        // Before the acknowledgement: a record a worker sees durable is already counted.
        store_counts_commit(s->counts);
        atomic_fetch_add(&s->records_written, written);
        atomic_fetch_add(&s->batches_written, 1);
        atomic_store(&s->head_global_seq, s->next_global_seq - 1);
    }
    acknowledge(s);
    return n;
}

static bool rings_have_work(struct store *s) {
    for (uint32_t w = 0; w < s->workers; w++) {
        struct store_ring *ring = &s->rings[w];
        if (atomic_load(&ring->head) != atomic_load(&ring->tail)) {
            return true;
        }
    }
    return false;
}

static void maybe_retention(struct store *s) {
    uint64_t now = core_base_now_ns();
    bool due = now - s->last_retention_ns >= (uint64_t)s->cfg.retention_interval_ms * 1000000u;
    if (!due && !atomic_exchange(&s->retention_requested, false)) {
        return;
    }
    s->last_retention_ns = now;
    int deleted = store_audit_retention(s);
    if (deleted >= (int)STORE_RETENTION_DELETE_BATCH_MAX) {
        atomic_store(&s->retention_requested, true); // more to delete: continue next tick
    }
}

static void sleep_until_work(struct store *s) {
    atomic_store(&s->sleeping, true);
    bool drainable = store_is_healthy(s) && !atomic_load(&s->paused) && rings_have_work(s);
    bool work = drainable || atomic_load(&s->stop) || atomic_load(&s->retention_requested);
    if (!work) {
        uint64_t since = core_base_now_ns() - s->last_retention_ns;
        uint64_t interval = (uint64_t)s->cfg.retention_interval_ms * 1000000u;
        uint64_t left_ms = since >= interval ? 0 : (interval - since) / 1000000u + 1;
        int timeout = left_ms > SLEEP_MAX_MS ? SLEEP_MAX_MS : (int)left_ms;
        struct pollfd pfd = {.fd = s->wake_efd, .events = POLLIN};
        int prc = poll(&pfd, 1, timeout);
        if (prc > 0) {
            uint64_t v;
            ssize_t n = read(s->wake_efd, &v, sizeof(v));
            (void)n; // EAGAIN: another reader cannot exist; a spurious wake is harmless
        }
    }
    atomic_store(&s->sleeping, false);
}

void *store_audit_thread_main(void *arg) {
    struct store *s = arg;
    pthread_setname_np(pthread_self(), "atls-store");
    // SCHED_BATCH: the same CPU share as before, but waking up (a worker pushed a record) no
    // longer preempts the worker that pushed it. The writer shares a core with a worker; at
    // normal policy each wake-up cut into the worker's loop, and during a handshake storm that
    // delayed established sessions' bytes (bench/RESULTS.md, storm). Fails only where the
    // policy is unknown; the writer then runs as before.
    struct sched_param sp = {.sched_priority = 0};
    int prc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (prc != 0) {
        LOG_WARN("audit writer: SCHED_BATCH refused (%s); it keeps the normal policy",
                 strerror(prc));
    }
    s->last_retention_ns = core_base_now_ns();
    for (;;) {
        // Read `stop` before draining: when it was set, every record pushed before it is
        // visible to this drain, so an empty drain means all of them are written.
        bool stopping = atomic_load(&s->stop);
        uint32_t n = drain_batch(s);
        maybe_retention(s);
        if (n > 0) {
            continue;
        }
        if (stopping) {
            break;
        }
        sleep_until_work(s);
    }
    return NULL;
}

// ---- Chain state ----

static int get_meta_pos(struct store_db *db, uint64_t *out_gseq, uint8_t *out_digest,
                        const char *name) {
    uint8_t v[STORE_META_POS_BYTES];
    size_t len = 0;
    int rc = store_rocksdb_get(db, v, &len, sizeof(v), STORE_CF_META, (const uint8_t *)name,
                               strlen(name));
    if (rc != 0) {
        return rc == -EMSGSIZE ? -EBADMSG : rc;
    }
    if (len != sizeof(v)) {
        return -EBADMSG;
    }
    *out_gseq = store_be64_get(v);
    memcpy(out_digest, v + 8, STORE_SHA256_BYTES);
    return 0;
}

int store_audit_load_chain(struct store *store, char *err, size_t errlen) {
    uint64_t head = 0;
    uint8_t digest[STORE_SHA256_BYTES] = {0};
    int rc = get_meta_pos(store->db, &head, digest, STORE_META_HEAD);
    if (rc != 0 && rc != -ENOENT) {
        snprintf(err, errlen, "audit store %s: chain head unreadable: %s", store->cfg.dir,
                 strerror(-rc));
        return rc == -EBADMSG ? -EIO : rc;
    }
    store->next_global_seq = head + 1;
    memcpy(store->last_digest, digest, sizeof(digest));
    atomic_store(&store->head_global_seq, head);
    uint64_t first = 1;
    uint8_t anchor_digest[STORE_SHA256_BYTES];
    rc = get_meta_pos(store->db, &first, anchor_digest, STORE_META_ANCHOR);
    if (rc != 0 && rc != -ENOENT) {
        snprintf(err, errlen, "audit store %s: retention anchor unreadable: %s", store->cfg.dir,
                 strerror(-rc));
        return rc == -EBADMSG ? -EIO : rc;
    }
    atomic_store(&store->first_global_seq, rc == 0 ? first : 1);
    return 0;
}

// ---- Retention ----

// delete_indexes adds the index deletes of the record stored under `key` (best effort: a
// record that no longer decodes has its primary entry and chain entry deleted regardless), and
// stages the measurement entry's delete for the decision counts when that entry exists.
static void delete_indexes(struct store *s, const uint8_t key[STORE_KEY_BYTES]) {
    size_t vlen = 0;
    if (store_rocksdb_get(s->db, s->value_buf, &vlen, STORE_VALUE_BYTES_MAX, STORE_CF_RECORDS,
                          key, STORE_KEY_BYTES) != 0) {
        return;
    }
    proto_arena_reset(&s->arena);
    ProtobufCMessage *m = NULL;
    if (proto_unpack(&s->arena, &m, &atls__audit_record__descriptor, s->value_buf, vlen) != 0) {
        LOG_WARN("retention: a record does not decode; its index entries stay");
        return;
    }
    const Atls__AuditRecord *rec = (const Atls__AuditRecord *)m;
    if (rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
        return;
    }
    uint8_t vk[STORE_VERDICT_KEY_BYTES];
    uint8_t mk[STORE_MEAS_KEY_BYTES];
    verdict_key(vk, rec, key);
    meas_key(mk, rec, key);
    store_rocksdb_batch_delete(s->db, s->batch, STORE_CF_BY_VERDICT, vk, sizeof(vk));
    store_rocksdb_batch_delete(s->db, s->batch, STORE_CF_BY_MEASUREMENT, mk, sizeof(mk));
    // The counts mirror the index, not the records: a record altered on disk names an entry
    // that may not exist, and deleting that one must not lower the counts.
    uint8_t none[1];
    size_t nlen = 0;
    int grc = store_rocksdb_get(s->db, none, &nlen, sizeof(none), STORE_CF_BY_MEASUREMENT, mk,
                                sizeof(mk));
    if (grc == 0 || grc == -EMSGSIZE) {
        store_counts_stage(s->counts, mk, -1);
    } else if (grc != -ENOENT) {
        // Whether the entry goes or not is unknown: stop trusting the counts.
        store_counts_invalidate(s->counts);
    }
}

// Retention deletes a prefix of the chain (oldest global_seq first), never a record in the
// middle. In the same write batch it moves the "anchor" to {first kept global_seq, SHA-256 of
// the last deleted record}: verify starts there, so the first kept record's prev_sha256 is
// still checked and retention never looks like a removal.
int store_audit_retention(struct store *s) {
    ASSERT(!s->read_only);
    uint64_t head = s->next_global_seq - 1;
    uint64_t first = atomic_load(&s->first_global_seq);
    uint64_t cutoff = 0;
    uint64_t age_ns = (uint64_t)s->cfg.retention_days * 86400u * 1000000000u;
    uint64_t now = core_base_wall_ns();
    if (s->cfg.retention_days > 0 && now > age_ns) {
        cutoff = now - age_ns;
    }
    int deleted = 0;
    if (head >= first && (cutoff != 0 || s->cfg.retention_max_records != 0)) {
        struct store_iter *it = store_rocksdb_iter_new(s->db, STORE_CF_CHAIN);
        if (it == NULL) {
            return -ENOMEM;
        }
        store_rocksdb_batch_clear(s->batch);
        store_counts_discard(s->counts);
        uint8_t seek[8];
        store_be64_put(seek, first);
        uint8_t anchor[STORE_META_POS_BYTES];
        for (store_rocksdb_iter_seek(it, seek, sizeof(seek));
             store_rocksdb_iter_is_valid(it) && deleted < (int)STORE_RETENTION_DELETE_BATCH_MAX;
             store_rocksdb_iter_next(it)) {
            size_t klen = 0;
            size_t vlen = 0;
            const uint8_t *k = store_rocksdb_iter_key(it, &klen);
            const uint8_t *v = store_rocksdb_iter_value(it, &vlen);
            if (klen != 8 || vlen != STORE_CHAIN_VALUE_BYTES) {
                LOG_ERROR("retention: malformed chain entry; retention stops");
                break;
            }
            uint64_t gseq = store_be64_get(k);
            uint64_t kept = head - gseq + 1;
            bool over_count = s->cfg.retention_max_records != 0 &&
                              kept > s->cfg.retention_max_records;
            bool too_old = cutoff != 0 && store_be64_get(v) < cutoff;
            if (!over_count && !too_old) {
                break;
            }
            delete_indexes(s, v);
            store_rocksdb_batch_delete(s->db, s->batch, STORE_CF_RECORDS, v, STORE_KEY_BYTES);
            store_rocksdb_batch_delete(s->db, s->batch, STORE_CF_CHAIN, k, klen);
            store_be64_put(anchor, gseq + 1);
            memcpy(anchor + 8, v + STORE_KEY_BYTES, STORE_SHA256_BYTES);
            deleted++;
        }
        char err[STORE_ERR_BYTES];
        int rc = store_rocksdb_iter_error(it, err, sizeof(err));
        store_rocksdb_iter_free(it);
        if (rc != 0) {
            LOG_ERROR("retention: %s", err);
            store_counts_discard(s->counts);
            return rc;
        }
        if (deleted > 0) {
            store_rocksdb_batch_put(s->db, s->batch, STORE_CF_META,
                                    (const uint8_t *)STORE_META_ANCHOR, strlen(STORE_META_ANCHOR),
                                    anchor, sizeof(anchor));
            rc = store_rocksdb_write(s->db, err, sizeof(err), s->batch,
                                     s->cfg.sync == STORE_SYNC_ALWAYS);
            if (rc != 0) {
                store_counts_discard(s->counts);
                store_set_unhealthy(s, rc, "retention: %s", err);
                return rc;
            }
            store_counts_commit(s->counts);
            atomic_store(&s->first_global_seq, store_be64_get(anchor));
            atomic_fetch_add(&s->retention_deleted, (uint64_t)deleted);
        }
    }
    atomic_fetch_add(&s->retention_runs, 1);
    return deleted;
}

// ---- Verification ----

struct verify_ctx {
    struct store *s;
    struct store_verify_result *res;
    const struct store_chain_pos *expect;   // NULL: no pinned head
    bool expect_seen;                       // the walk met record expect->global_seq
    uint8_t expect_got[STORE_SHA256_BYTES]; // its digest in the (verified) chain
    uint8_t value[STORE_VALUE_BYTES_MAX];
    _Alignas(16) uint8_t arena_buf[STORE_ARENA_BYTES];
    struct proto_arena arena;
};

static void bad(struct verify_ctx *c, enum store_verify_status st, uint64_t gseq,
                const uint8_t *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void bad(struct verify_ctx *c, enum store_verify_status st, uint64_t gseq,
                const uint8_t *key, const char *fmt, ...) {
    struct store_verify_result *r = c->res;
    r->status = st;
    r->bad_global_seq = gseq;
    r->bad_key_known = key != NULL && store_key_decode(&r->bad_key, key, STORE_KEY_BYTES) == 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

// verify_record_indexes checks that the decision `rec` at chain position `gseq`, stored under
// `key`, has both of its index entries. Returns true when it has.
static bool verify_record_indexes(struct verify_ctx *c, uint64_t gseq, const uint8_t *key,
                                  const Atls__AuditRecord *rec) {
    if (rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
        return true;
    }
    uint8_t vk[STORE_VERDICT_KEY_BYTES];
    uint8_t mk[STORE_MEAS_KEY_BYTES];
    verdict_key(vk, rec, key);
    meas_key(mk, rec, key);
    const struct {
        enum store_cf cf;
        const uint8_t *k;
        size_t klen;
        const char *name;
    } want[2] = {{STORE_CF_BY_VERDICT, vk, sizeof(vk), "by_verdict"},
                 {STORE_CF_BY_MEASUREMENT, mk, sizeof(mk), "by_measurement"}};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        uint8_t none[1];
        size_t len = 0;
        int rc = store_rocksdb_get(c->s->db, none, &len, sizeof(none), want[i].cf, want[i].k,
                                   want[i].klen);
        if (rc == -ENOENT) {
            bad(c, STORE_VERIFY_INDEX, gseq, key,
                "record %" PRIu64 " has no %s index entry (queries through that index omit it)",
                gseq, want[i].name);
            return false;
        }
        if (rc != 0 && rc != -EMSGSIZE) { // EMSGSIZE: present with a value (the index walk)
            bad(c, STORE_VERIFY_CORRUPT, gseq, key, "record %" PRIu64 ": %s index unreadable: %s",
                gseq, want[i].name, strerror(-rc));
            return false;
        }
    }
    return true;
}

// verify_entry checks one chain entry `gseq` -> `cv` against its record and the previous
// digest `prev`, and the record's index entries. Returns true when it is intact.
static bool verify_entry(struct verify_ctx *c, uint64_t gseq, const uint8_t *cv,
                         const uint8_t prev[STORE_SHA256_BYTES]) {
    size_t vlen = 0;
    int rc = store_rocksdb_get(c->s->db, c->value, &vlen, sizeof(c->value), STORE_CF_RECORDS, cv,
                               STORE_KEY_BYTES);
    if (rc == -ENOENT) {
        bad(c, STORE_VERIFY_REMOVED, gseq, cv, "record %" PRIu64 " was removed", gseq);
        return false;
    }
    if (rc != 0) {
        bad(c, STORE_VERIFY_CORRUPT, gseq, cv, "record %" PRIu64 " unreadable: %s", gseq,
            strerror(-rc));
        return false;
    }
    uint8_t digest[STORE_SHA256_BYTES];
    SHA256(c->value, vlen, digest);
    if (memcmp(digest, cv + STORE_KEY_BYTES, STORE_SHA256_BYTES) != 0) {
        bad(c, STORE_VERIFY_ALTERED, gseq, cv,
            "record %" PRIu64 " was altered: its SHA-256 does not match the chain", gseq);
        return false;
    }
    proto_arena_reset(&c->arena);
    ProtobufCMessage *m = NULL;
    if (proto_unpack(&c->arena, &m, &atls__audit_record__descriptor, c->value, vlen) != 0) {
        bad(c, STORE_VERIFY_CORRUPT, gseq, cv, "record %" PRIu64 " does not decode", gseq);
        return false;
    }
    const Atls__AuditRecord *rec = (const Atls__AuditRecord *)m;
    struct store_key k;
    ASSERT(store_key_decode(&k, cv, STORE_KEY_BYTES) == 0);
    if (rec->global_seq != gseq || rec->time_ns != k.time_ns || rec->worker != k.worker ||
        rec->seq != k.seq || !store_audit_record_is_valid(rec)) {
        bad(c, STORE_VERIFY_ALTERED, gseq, cv,
            "record %" PRIu64 " was altered: its fields do not match its key/position", gseq);
        return false;
    }
    if (rec->prev_sha256.len != STORE_SHA256_BYTES ||
        memcmp(rec->prev_sha256.data, prev, STORE_SHA256_BYTES) != 0) {
        bad(c, STORE_VERIFY_ALTERED, gseq, cv,
            "record %" PRIu64 ": prev_sha256 does not match record %" PRIu64
            " (altered chain link)",
            gseq, gseq - 1);
        return false;
    }
    return verify_record_indexes(c, gseq, cv, rec);
}

// read_chain_pos reads the meta position `name` for verification: 0 (or -ENOENT) as
// get_meta_pos; a value that does not decode is a finding (CORRUPT, returns 1), any other
// failure an error (-errno, reason in `err`).
static int read_chain_pos(struct verify_ctx *c, char *err, size_t errlen, uint64_t *out_gseq,
                          uint8_t *out_digest, const char *name, const char *what) {
    int rc = get_meta_pos(c->s->db, out_gseq, out_digest, name);
    if (rc == -EBADMSG) {
        bad(c, STORE_VERIFY_CORRUPT, 0, NULL, "the %s (meta \"%s\") does not decode: not %u bytes",
            what, name, STORE_META_POS_BYTES);
        return 1;
    }
    if (rc != 0 && rc != -ENOENT) {
        snprintf(err, errlen, "%s unreadable: %s", what, strerror(-rc));
    }
    return rc;
}

// verify_chain walks the chain column family from the anchor to the head.
static int verify_chain(struct verify_ctx *c, char *err, size_t errlen) {
    struct store_verify_result *r = c->res;
    uint64_t expect = 1;
    uint8_t prev[STORE_SHA256_BYTES] = {0};
    int rc = read_chain_pos(c, err, errlen, &expect, prev, STORE_META_ANCHOR, "retention anchor");
    if (rc == -ENOENT) {
        expect = 1;
        memset(prev, 0, sizeof(prev));
    } else if (rc != 0) {
        return rc > 0 ? 0 : rc;
    }
    uint64_t head = 0;
    uint8_t head_digest[STORE_SHA256_BYTES] = {0};
    rc = read_chain_pos(c, err, errlen, &head, head_digest, STORE_META_HEAD, "chain head");
    if (rc != 0 && rc != -ENOENT) {
        return rc > 0 ? 0 : rc;
    }
    r->first_global_seq = expect;
    struct store_iter *it = store_rocksdb_iter_new(c->s->db, STORE_CF_CHAIN);
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    uint8_t seek[8];
    store_be64_put(seek, 0);
    for (store_rocksdb_iter_seek(it, seek, sizeof(seek)); store_rocksdb_iter_is_valid(it);
         store_rocksdb_iter_next(it)) {
        size_t klen = 0;
        size_t vlen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        const uint8_t *v = store_rocksdb_iter_value(it, &vlen);
        if (klen != 8 || vlen != STORE_CHAIN_VALUE_BYTES) {
            bad(c, STORE_VERIFY_CORRUPT, expect, NULL, "chain entry near record %" PRIu64
                " is malformed", expect);
            break;
        }
        uint64_t gseq = store_be64_get(k);
        if (gseq < expect) {
            bad(c, STORE_VERIFY_INSERTED, gseq, v,
                "record %" PRIu64 " precedes the retention anchor %" PRIu64, gseq, expect);
            break;
        }
        if (gseq > expect) {
            bad(c, STORE_VERIFY_REMOVED, expect, NULL,
                "records %" PRIu64 "..%" PRIu64 " were removed (gap before record %" PRIu64 ")",
                expect, gseq - 1, gseq);
            break;
        }
        if (!verify_entry(c, gseq, v, prev)) {
            break;
        }
        memcpy(prev, v + STORE_KEY_BYTES, STORE_SHA256_BYTES);
        if (c->expect != NULL && gseq == c->expect->global_seq) {
            c->expect_seen = true;
            memcpy(c->expect_got, prev, sizeof(c->expect_got));
        }
        r->records_checked++;
        r->last_global_seq = gseq;
        expect++;
    }
    rc = store_rocksdb_iter_error(it, err, errlen);
    store_rocksdb_iter_free(it);
    if (rc != 0 || r->status != STORE_VERIFY_OK) {
        return rc;
    }
    if (expect - 1 < head) {
        bad(c, STORE_VERIFY_REMOVED, expect, NULL,
            "records %" PRIu64 "..%" PRIu64 " at the end of the chain were removed", expect,
            head);
    } else if (expect - 1 > head ||
               (head >= r->first_global_seq && memcmp(prev, head_digest, sizeof(prev)) != 0)) {
        bad(c, STORE_VERIFY_ALTERED, head, NULL,
            "the chain head (record %" PRIu64 ") does not match the records", head);
    } else {
        r->head.global_seq = expect - 1;
        memcpy(r->head.sha256, prev, sizeof(prev));
    }
    return 0;
}

// verify_no_extra checks that every stored record is the one its chain position names.
static int verify_no_extra(struct verify_ctx *c, char *err, size_t errlen) {
    struct store_iter *it = store_rocksdb_iter_new(c->s->db, STORE_CF_RECORDS);
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (store_rocksdb_iter_seek_first(it); store_rocksdb_iter_is_valid(it);
         store_rocksdb_iter_next(it)) {
        size_t klen = 0;
        size_t vlen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        const uint8_t *v = store_rocksdb_iter_value(it, &vlen);
        proto_arena_reset(&c->arena);
        ProtobufCMessage *m = NULL;
        if (klen != STORE_KEY_BYTES ||
            proto_unpack(&c->arena, &m, &atls__audit_record__descriptor, v, vlen) != 0) {
            bad(c, STORE_VERIFY_INSERTED, 0, klen == STORE_KEY_BYTES ? k : NULL,
                "a record outside the chain does not decode");
            break;
        }
        uint64_t gseq = ((const Atls__AuditRecord *)m)->global_seq;
        uint8_t ck[8];
        uint8_t cv[STORE_CHAIN_VALUE_BYTES];
        size_t cvlen = 0;
        store_be64_put(ck, gseq);
        int rc = store_rocksdb_get(c->s->db, cv, &cvlen, sizeof(cv), STORE_CF_CHAIN, ck,
                                   sizeof(ck));
        if (rc != 0 || cvlen != sizeof(cv) || memcmp(cv, k, STORE_KEY_BYTES) != 0) {
            bad(c, STORE_VERIFY_INSERTED, gseq, k,
                "record claiming position %" PRIu64 " is not in the chain (inserted)", gseq);
            break;
        }
    }
    int rc = store_rocksdb_iter_error(it, err, errlen);
    store_rocksdb_iter_free(it);
    return rc;
}

// verify_index_cf checks that every entry of the index `cf` is the entry its record gives. Run
// after the chain walk (every chained decision has its entries) and verify_no_extra (every
// record is chained and intact): together the index holds exactly the records' entries. One
// point get per entry.
static int verify_index_cf(struct verify_ctx *c, char *err, size_t errlen, enum store_cf cf) {
    ASSERT(cf == STORE_CF_BY_VERDICT || cf == STORE_CF_BY_MEASUREMENT);
    const char *name = cf == STORE_CF_BY_VERDICT ? "by_verdict" : "by_measurement";
    size_t want_len = cf == STORE_CF_BY_VERDICT ? STORE_VERDICT_KEY_BYTES : STORE_MEAS_KEY_BYTES;
    size_t off = want_len - STORE_KEY_BYTES; // the record key ends every index key
    struct store_iter *it = store_rocksdb_iter_new(c->s->db, cf);
    if (it == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (store_rocksdb_iter_seek_first(it); store_rocksdb_iter_is_valid(it);
         store_rocksdb_iter_next(it)) {
        size_t klen = 0;
        size_t ivlen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        (void)store_rocksdb_iter_value(it, &ivlen);
        if (klen != want_len) {
            bad(c, STORE_VERIFY_INDEX, 0, NULL, "a %s index entry is malformed (%zu bytes)", name,
                klen);
            break;
        }
        const uint8_t *rk = k + off;
        char kt[STORE_CURSOR_BYTES];
        struct store_key key;
        ASSERT(store_key_decode(&key, rk, STORE_KEY_BYTES) == 0);
        store_key_format(kt, &key);
        size_t vlen = 0;
        int rc = store_rocksdb_get(c->s->db, c->value, &vlen, sizeof(c->value), STORE_CF_RECORDS,
                                   rk, STORE_KEY_BYTES);
        if (rc == -ENOENT) {
            bad(c, STORE_VERIFY_INDEX, 0, rk,
                "a %s index entry names record %s, which does not exist", name, kt);
            break;
        }
        proto_arena_reset(&c->arena);
        ProtobufCMessage *m = NULL;
        if (rc != 0 ||
            proto_unpack(&c->arena, &m, &atls__audit_record__descriptor, c->value, vlen) != 0) {
            bad(c, STORE_VERIFY_CORRUPT, 0, rk, "record %s (named by the %s index) unreadable", kt,
                name);
            break;
        }
        const Atls__AuditRecord *rec = (const Atls__AuditRecord *)m;
        uint8_t want[STORE_MEAS_KEY_BYTES];
        if (cf == STORE_CF_BY_VERDICT) {
            verdict_key(want, rec, rk);
        } else {
            meas_key(want, rec, rk);
        }
        const char *why = NULL;
        if (rec->kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
            why = "the record is not a decision";
        } else if (memcmp(want, k, want_len) != 0) {
            why = cf == STORE_CF_BY_VERDICT ? "its verdict is not the record's"
                                            : "its measurement or verdict is not the record's";
        } else if (ivlen != 0) {
            why = "it has a value";
        }
        if (why != NULL) {
            bad(c, STORE_VERIFY_INDEX, rec->global_seq, rk,
                "a %s index entry of record %" PRIu64 " (%s) does not match it: %s", name,
                rec->global_seq, kt, why);
            break;
        }
    }
    int rc = store_rocksdb_iter_error(it, err, errlen);
    store_rocksdb_iter_free(it);
    return rc;
}

// verify_expect_head checks the pinned position against what the chain walk saw.
static void verify_expect_head(struct verify_ctx *c) {
    const struct store_chain_pos *e = c->expect;
    const struct store_verify_result *r = c->res;
    char want[2 * STORE_SHA256_BYTES + 1];
    core_base_hex_encode(want, e->sha256, STORE_SHA256_BYTES);
    if (!c->expect_seen && e->global_seq > r->head.global_seq) {
        bad(c, STORE_VERIFY_EXPECT_HEAD, e->global_seq, NULL,
            "expected head record %" PRIu64 " is past the chain's head %" PRIu64
            ": records were removed from the end and the head rewritten",
            e->global_seq, r->head.global_seq);
    } else if (!c->expect_seen) {
        bad(c, STORE_VERIFY_EXPECT_HEAD, e->global_seq, NULL,
            "expected head record %" PRIu64 " is no longer in the chain (it starts at %" PRIu64
            "): a prefix was removed and the anchor rewritten, or retention deleted it (then "
            "pin a newer head)",
            e->global_seq, r->first_global_seq);
    } else if (memcmp(c->expect_got, e->sha256, STORE_SHA256_BYTES) != 0) {
        char got[2 * STORE_SHA256_BYTES + 1];
        core_base_hex_encode(got, c->expect_got, STORE_SHA256_BYTES);
        bad(c, STORE_VERIFY_EXPECT_HEAD, e->global_seq, NULL,
            "record %" PRIu64 " has SHA-256 %.16s..., not the expected %.16s...: the chain was "
            "rewritten",
            e->global_seq, got, want);
    }
}

int store_audit_verify_expect_head(struct store_verify_result *out_result, char *err, size_t errlen,
                                   const char *dir, const struct store_chain_pos *expect) {
    ASSERT(out_result != NULL);
    ASSERT(dir != NULL);
    memset(out_result, 0, sizeof(*out_result));
    struct store *s = NULL;
    // The head and anchor are read by verify_chain, which reports one that does not decode.
    int rc = store_open_readonly_raw(&s, err, errlen, dir, false);
    if (rc != 0) {
        return rc;
    }
    struct verify_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        store_close(s);
        return -ENOMEM;
    }
    c->s = s;
    c->res = out_result;
    c->expect = expect;
    proto_arena_init(&c->arena, c->arena_buf, sizeof(c->arena_buf));
    rc = verify_chain(c, err, errlen);
    if (rc == 0 && out_result->status == STORE_VERIFY_OK) {
        rc = verify_no_extra(c, err, errlen);
    }
    if (rc == 0 && out_result->status == STORE_VERIFY_OK) {
        rc = verify_index_cf(c, err, errlen, STORE_CF_BY_VERDICT);
    }
    if (rc == 0 && out_result->status == STORE_VERIFY_OK) {
        rc = verify_index_cf(c, err, errlen, STORE_CF_BY_MEASUREMENT);
    }
    if (rc == 0 && out_result->status == STORE_VERIFY_OK && expect != NULL) {
        verify_expect_head(c);
    }
    if (rc == 0 && out_result->status == STORE_VERIFY_OK) {
        snprintf(out_result->detail, sizeof(out_result->detail),
                 "chain intact: %" PRIu64 " records", out_result->records_checked);
    }
    free(c);
    store_close(s);
    return rc;
}

int store_audit_verify(struct store_verify_result *out_result, char *err, size_t errlen,
                       const char *dir) {
    return store_audit_verify_expect_head(out_result, err, errlen, dir, NULL);
}
