// policy_nonce.c: the nonce table shared by every thread (DESIGN.md §6). Sharded open addressing
// whose slots change state only by compare-and-swap on one 64-bit control word; no mutex.
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core_base.h"
#include "policy.h"
#include "policy_internal.h"

// A slot's control word packs (generation << 2) | state. The generation grows every time a slot
// is reserved for a new nonce, so a control word never repeats (62 bits: no ABA in practice) and
// a reader that sees the same word before and after reading the key read an untorn key.
//
// Life of a slot: EMPTY -> RESERVED (issuer owns it, writes key and expiry) -> ISSUED (published
// with a release store) -> CONSUMED (one CAS, same generation) -> EMPTY on expiry (sweep) or
// straight to RESERVED of the next generation (an issue reclaiming an expired slot).
enum slot_state {
    SLOT_EMPTY = 0,
    SLOT_RESERVED = 1,
    SLOT_ISSUED = 2,
    SLOT_CONSUMED = 3,
};

enum {
    slot_key_words = policy_nonce_bytes / 8,
    slot_read_attempts_max = 4, // re-reads of a slot whose generation changed under us
    cache_line_bytes = 64,
    random_buffer_bytes = 16 * policy_nonce_bytes,
};

STATIC_ASSERT(policy_nonce_bytes % 8 == 0, "nonce is read as 64-bit words");

// WARNING: key and expiry are atomics although only one thread writes them per generation: this
// is the C11 seqlock pattern (Boehm, "Can seqlocks get along with programming language memory
// models?"); plain loads racing with a recycling writer would be data races.
struct slot {
    _Atomic uint64_t ctl;
    _Atomic uint64_t expiry_ns;
    _Atomic uint64_t key[slot_key_words];
} __attribute__((aligned(cache_line_bytes)));

STATIC_ASSERT(sizeof(struct slot) == cache_line_bytes, "one slot per cache line");

// Per-shard counters, signed because increments and decrements of one slot's transitions can be
// observed out of order by get_stats; the snapshot clamps at zero.
struct shard_counters {
    _Atomic int64_t live;
    _Atomic int64_t consumed_held;
    _Atomic uint64_t issued_total;
    _Atomic uint64_t consumed_total;
    _Atomic uint64_t reclaimed_total;
} __attribute__((aligned(cache_line_bytes)));

struct policy_nonce {
    uint32_t shard_count;
    uint32_t slots_per_shard;
    uint32_t probe_len; // min(slots_per_shard, policy_nonce_probe_max)
    uint64_t seed;      // random per table: hash placement is not predictable from outside
    struct slot *slots; // shard_count * slots_per_shard, shard-major
    struct shard_counters *counters;
    _Atomic uint64_t full_total;
};

struct slot_snapshot {
    uint64_t ctl;
    uint64_t expiry_ns;
    uint64_t key[slot_key_words];
};

static inline uint64_t ctl_state(uint64_t ctl) {
    return ctl & 3u;
}

static inline uint64_t ctl_next_reserved(uint64_t ctl) {
    return (((ctl >> 2) + 1) << 2) | SLOT_RESERVED;
}

static inline uint64_t ctl_with_state(uint64_t ctl, enum slot_state state) {
    return (ctl & ~(uint64_t)3) | (uint64_t)state;
}

static bool is_power_of_two(uint32_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}

int policy_internal_random(void *out, size_t len) {
    uint8_t *p = out;
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(p + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            LOG_ERROR("getrandom: %s", strerror(errno));
            return -EIO;
        }
        done += (size_t)n;
    }
    return 0;
}

// Random bytes for nonces come from a per-thread buffer refilled by one getrandom(2) per 16
// nonces: the syscall dominated issue's cost. Consumed bytes are wiped.
static _Thread_local struct {
    uint8_t buf[random_buffer_bytes];
    size_t used;
    bool filled;
} random_cache;

static int random_nonce(uint64_t *out_key) {
    if (!random_cache.filled || random_cache.used + policy_nonce_bytes > random_buffer_bytes) {
        int rc = policy_internal_random(random_cache.buf, sizeof(random_cache.buf));
        if (rc < 0) {
            return rc;
        }
        random_cache.used = 0;
        random_cache.filled = true;
    }
    memcpy(out_key, random_cache.buf + random_cache.used, policy_nonce_bytes);
    memset(random_cache.buf + random_cache.used, 0, policy_nonce_bytes);
    random_cache.used += policy_nonce_bytes;
    return 0;
}

uint64_t policy_internal_mix64(uint64_t x) {
    // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t key_hash(const struct policy_nonce *t, const uint64_t *key) {
    uint64_t h = key[0] ^ t->seed;
    for (uint32_t i = 1; i < slot_key_words; i++) {
        h = policy_internal_mix64(h) ^ key[i];
    }
    return policy_internal_mix64(h);
}

static struct slot *probe_slot(const struct policy_nonce *t, uint64_t hash, uint32_t i) {
    uint32_t shard = (uint32_t)hash & (t->shard_count - 1);
    uint32_t home = (uint32_t)(hash >> 32) & (t->slots_per_shard - 1);
    uint32_t index = (home + i) & (t->slots_per_shard - 1);
    return &t->slots[(size_t)shard * t->slots_per_shard + index];
}

static struct shard_counters *shard_of(const struct policy_nonce *t, uint64_t hash) {
    return &t->counters[(uint32_t)hash & (t->shard_count - 1)];
}

// read_slot takes a consistent snapshot of a published slot (ISSUED or CONSUMED). Returns false
// for EMPTY/RESERVED slots or when the slot kept being recycled while we read it.
static bool read_slot(const struct slot *s, struct slot_snapshot *out) {
    for (uint32_t attempt = 0; attempt < slot_read_attempts_max; attempt++) {
        uint64_t c1 = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if (ctl_state(c1) == SLOT_EMPTY || ctl_state(c1) == SLOT_RESERVED) {
            return false;
        }
        // Acquire loads pair with the writer's release stores: if we read any value of a newer
        // generation, its reservation CAS happens before our re-read below, which then differs.
        // (Used instead of the fence pair of the classic seqlock, which ThreadSanitizer cannot
        // model; on x86-64 both compile to plain moves.)
        for (uint32_t i = 0; i < slot_key_words; i++) {
            out->key[i] = atomic_load_explicit(&s->key[i], memory_order_acquire);
        }
        out->expiry_ns = atomic_load_explicit(&s->expiry_ns, memory_order_acquire);
        uint64_t c2 = atomic_load_explicit(&s->ctl, memory_order_relaxed);
        // Key and expiry never change within a generation; ISSUED -> CONSUMED keeps it, so the
        // read stands and the newer state is reported.
        if ((c1 >> 2) == (c2 >> 2) && ctl_state(c2) >= SLOT_ISSUED) {
            out->ctl = c2;
            return true;
        }
    }
    return false;
}

static bool key_equal(const uint64_t *a, const uint64_t *b) {
    uint64_t diff = 0;
    for (uint32_t i = 0; i < slot_key_words; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0;
}

// find scans the whole probe window (no early stop at EMPTY: slots return to EMPTY on expiry,
// so an EMPTY slot does not end a probe chain).
static struct slot *find(const struct policy_nonce *t, const uint64_t *key, uint64_t hash,
                         struct slot_snapshot *out_snap) {
    for (uint32_t i = 0; i < t->probe_len; i++) {
        struct slot *s = probe_slot(t, hash, i);
        if (read_slot(s, out_snap) && key_equal(out_snap->key, key)) {
            return s;
        }
    }
    return NULL;
}

// reclaimable says whether the slot whose control word is `ctl` may be taken at `now_ns`. The
// expiry read belongs to that generation whenever a later CAS from `ctl` succeeds.
static bool reclaimable(const struct slot *s, uint64_t ctl, uint64_t now_ns) {
    uint64_t state = ctl_state(ctl);
    if (state == SLOT_EMPTY) {
        return true;
    }
    if (state == SLOT_RESERVED) {
        return false;
    }
    return now_ns >= atomic_load_explicit(&s->expiry_ns, memory_order_relaxed);
}

static void count_reclaim(struct shard_counters *c, uint64_t old_ctl) {
    if (ctl_state(old_ctl) == SLOT_ISSUED) {
        atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->reclaimed_total, 1, memory_order_relaxed);
    } else if (ctl_state(old_ctl) == SLOT_CONSUMED) {
        atomic_fetch_sub_explicit(&c->consumed_held, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->reclaimed_total, 1, memory_order_relaxed);
    }
}

// try_place reserves a free or expired slot in the probe window of `key`, writes the nonce and
// publishes it. Returns true when placed.
static bool try_place(struct policy_nonce *t, const uint64_t *key, uint64_t now_ns,
                      uint64_t expiry_ns) {
    uint64_t hash = key_hash(t, key);
    struct shard_counters *counters = shard_of(t, hash);
    for (uint32_t i = 0; i < t->probe_len; i++) {
        struct slot *s = probe_slot(t, hash, i);
        uint64_t ctl = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if (!reclaimable(s, ctl, now_ns)) {
            continue;
        }
        uint64_t reserved = ctl_next_reserved(ctl);
        if (!atomic_compare_exchange_strong_explicit(&s->ctl, &ctl, reserved,
                                                     memory_order_acq_rel, memory_order_relaxed)) {
            continue; // another issuer or a consumer got there first; a live slot is never taken
        }
        count_reclaim(counters, ctl);
        // Seqlock writer: release stores, so a reader that sees any of them also sees `reserved`
        // (or later) when it re-reads the control word, and discards what it read.
        for (uint32_t w = 0; w < slot_key_words; w++) {
            atomic_store_explicit(&s->key[w], key[w], memory_order_release);
        }
        atomic_store_explicit(&s->expiry_ns, expiry_ns, memory_order_release);
        // Counted before publishing so a consumer's decrement never precedes this increment.
        atomic_fetch_add_explicit(&counters->live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&counters->issued_total, 1, memory_order_relaxed);
        atomic_store_explicit(&s->ctl, ctl_with_state(reserved, SLOT_ISSUED),
                              memory_order_release);
        return true;
    }
    return false;
}

int policy_nonce_new(struct policy_nonce **out_table, uint32_t shard_count,
                     uint32_t slots_per_shard) {
    ASSERT(out_table != NULL);
    if (!is_power_of_two(shard_count) || shard_count > policy_nonce_shards_max ||
        !is_power_of_two(slots_per_shard) || slots_per_shard > policy_nonce_slots_per_shard_max) {
        return -EINVAL;
    }
    int rc = -ENOMEM;
    struct policy_nonce *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        goto out;
    }
    size_t slot_count = (size_t)shard_count * slots_per_shard;
    t->slots = aligned_alloc(cache_line_bytes, slot_count * sizeof(struct slot));
    if (t->slots == NULL) {
        goto out_free_table;
    }
    t->counters = aligned_alloc(cache_line_bytes, shard_count * sizeof(struct shard_counters));
    if (t->counters == NULL) {
        goto out_free_slots;
    }
    rc = policy_internal_random(&t->seed, sizeof(t->seed));
    if (rc < 0) {
        goto out_free_counters;
    }
    t->shard_count = shard_count;
    t->slots_per_shard = slots_per_shard;
    t->probe_len = slots_per_shard < policy_nonce_probe_max ? slots_per_shard
                                                            : (uint32_t)policy_nonce_probe_max;
    for (size_t i = 0; i < slot_count; i++) {
        atomic_init(&t->slots[i].ctl, SLOT_EMPTY);
        atomic_init(&t->slots[i].expiry_ns, 0);
        for (uint32_t w = 0; w < slot_key_words; w++) {
            atomic_init(&t->slots[i].key[w], 0);
        }
    }
    for (uint32_t i = 0; i < shard_count; i++) {
        atomic_init(&t->counters[i].live, 0);
        atomic_init(&t->counters[i].consumed_held, 0);
        atomic_init(&t->counters[i].issued_total, 0);
        atomic_init(&t->counters[i].consumed_total, 0);
        atomic_init(&t->counters[i].reclaimed_total, 0);
    }
    atomic_init(&t->full_total, 0);
    *out_table = t;
    return 0;

out_free_counters:
    free(t->counters);
    t->counters = NULL;
out_free_slots:
    free(t->slots);
    t->slots = NULL;
out_free_table:
    free(t);
    t = NULL;
out:
    return rc;
}

void policy_nonce_free(struct policy_nonce *table) {
    if (table == NULL) {
        return;
    }
    free(table->counters);
    table->counters = NULL;
    free(table->slots);
    table->slots = NULL;
    free(table);
}

int policy_nonce_issue(struct policy_nonce *table, uint8_t *out_nonce, uint64_t now_ns,
                       uint64_t ttl_ns) {
    ASSERT(table != NULL);
    ASSERT(out_nonce != NULL);
    ASSERT(ttl_ns > 0);
    uint64_t expiry_ns = now_ns + ttl_ns < now_ns ? UINT64_MAX : now_ns + ttl_ns;
    // A full probe window is retried with another random nonce, which lands elsewhere.
    for (uint32_t attempt = 0; attempt < policy_nonce_issue_attempts_max; attempt++) {
        uint64_t key[slot_key_words];
        int rc = random_nonce(key);
        if (rc < 0) {
            return rc;
        }
        if (try_place(table, key, now_ns, expiry_ns)) {
            memcpy(out_nonce, key, policy_nonce_bytes);
            return 0;
        }
    }
    atomic_fetch_add_explicit(&table->full_total, 1, memory_order_relaxed);
    return -ENOSPC;
}

enum policy_nonce_peek_result policy_nonce_peek(const struct policy_nonce *table,
                                                const uint8_t *nonce, size_t len,
                                                uint64_t now_ns) {
    ASSERT(table != NULL);
    if (nonce == NULL || len != policy_nonce_bytes) {
        return POLICY_NONCE_PEEK_UNKNOWN;
    }
    uint64_t key[slot_key_words];
    memcpy(key, nonce, sizeof(key));
    struct slot_snapshot snap;
    if (find(table, key, key_hash(table, key), &snap) == NULL) {
        return POLICY_NONCE_PEEK_UNKNOWN;
    }
    if (ctl_state(snap.ctl) == SLOT_CONSUMED) {
        return POLICY_NONCE_PEEK_CONSUMED;
    }
    ASSERT_HOT(ctl_state(snap.ctl) == SLOT_ISSUED);
    return now_ns >= snap.expiry_ns ? POLICY_NONCE_PEEK_EXPIRED : POLICY_NONCE_PEEK_VALID;
}

enum policy_nonce_consume_result policy_nonce_consume(struct policy_nonce *table,
                                                      const uint8_t *nonce, size_t len,
                                                      uint64_t now_ns) {
    ASSERT(table != NULL);
    if (nonce == NULL || len != policy_nonce_bytes) {
        return POLICY_NONCE_CONSUME_UNKNOWN;
    }
    uint64_t key[slot_key_words];
    memcpy(key, nonce, sizeof(key));
    uint64_t hash = key_hash(table, key);
    struct slot_snapshot snap;
    struct slot *s = find(table, key, hash, &snap);
    if (s == NULL) {
        return POLICY_NONCE_CONSUME_UNKNOWN;
    }
    if (ctl_state(snap.ctl) == SLOT_CONSUMED) {
        return POLICY_NONCE_CONSUME_REPLAYED;
    }
    if (now_ns >= snap.expiry_ns) {
        return POLICY_NONCE_CONSUME_EXPIRED;
    }
    uint64_t expected = snap.ctl;
    if (atomic_compare_exchange_strong_explicit(&s->ctl, &expected,
                                                ctl_with_state(snap.ctl, SLOT_CONSUMED),
                                                memory_order_acq_rel, memory_order_acquire)) {
        struct shard_counters *c = shard_of(table, hash);
        atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->consumed_held, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->consumed_total, 1, memory_order_relaxed);
        return POLICY_NONCE_CONSUME_OK;
    }
    if ((expected >> 2) == (snap.ctl >> 2)) {
        ASSERT_HOT(ctl_state(expected) == SLOT_CONSUMED);
        return POLICY_NONCE_CONSUME_REPLAYED; // another caller won the CAS
    }
    // The slot was recycled under us, which only happens after the nonce expired by the
    // reclaiming thread's clock.
    return POLICY_NONCE_CONSUME_EXPIRED;
}

uint64_t policy_nonce_sweep(struct policy_nonce *table, uint64_t now_ns) {
    ASSERT(table != NULL);
    uint64_t reclaimed = 0;
    for (uint32_t shard = 0; shard < table->shard_count; shard++) {
        struct shard_counters *c = &table->counters[shard];
        for (uint32_t i = 0; i < table->slots_per_shard; i++) {
            struct slot *s = &table->slots[(size_t)shard * table->slots_per_shard + i];
            uint64_t ctl = atomic_load_explicit(&s->ctl, memory_order_acquire);
            if (ctl_state(ctl) < SLOT_ISSUED || !reclaimable(s, ctl, now_ns)) {
                continue;
            }
            // EMPTY of the next generation: a reader holding the old word sees it change.
            uint64_t empty = ctl_with_state(ctl_next_reserved(ctl), SLOT_EMPTY);
            if (atomic_compare_exchange_strong_explicit(&s->ctl, &ctl, empty, memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                count_reclaim(c, ctl);
                reclaimed++;
            }
        }
    }
    return reclaimed;
}

static uint64_t clamp0(int64_t v) {
    return v < 0 ? 0 : (uint64_t)v;
}

void policy_nonce_get_stats(const struct policy_nonce *table,
                            struct policy_nonce_stats *out_stats) {
    ASSERT(table != NULL);
    ASSERT(out_stats != NULL);
    int64_t live = 0;
    int64_t held = 0;
    memset(out_stats, 0, sizeof(*out_stats));
    for (uint32_t i = 0; i < table->shard_count; i++) {
        struct shard_counters *c = &table->counters[i];
        live += atomic_load_explicit(&c->live, memory_order_relaxed);
        held += atomic_load_explicit(&c->consumed_held, memory_order_relaxed);
        out_stats->issued_total += atomic_load_explicit(&c->issued_total, memory_order_relaxed);
        out_stats->consumed_total +=
            atomic_load_explicit(&c->consumed_total, memory_order_relaxed);
        out_stats->reclaimed_total +=
            atomic_load_explicit(&c->reclaimed_total, memory_order_relaxed);
    }
    out_stats->live = clamp0(live);
    out_stats->consumed_held = clamp0(held);
    out_stats->capacity = (uint64_t)table->shard_count * table->slots_per_shard;
    out_stats->full_total = atomic_load_explicit(&table->full_total, memory_order_relaxed);
}
