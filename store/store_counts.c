// store_counts.c: decision counts per (measurement, verdict) kept in memory, so the measurement
// statistics answer in O(distinct measurements) instead of scanning the by_measurement index.
// Built by one scan at open, updated by the store thread once a batch is durable.
#include <errno.h>
#include <pthread.h>

#include "core_base.h"
#include "store_internal.h"

// One index entry put (+1) or deleted (-1) by the write batch being built.
struct staged {
    uint8_t mk[STORE_MEAS_KEY_BYTES];
    int8_t delta;
};

// struct store_counts mirrors the by_measurement index for every measurement below `limit`
// (all of them while `limited` is false): for each, how many index entries it has per verdict.
//
// Memory is bounded (rule 6): `entries_max` measurements, allocated at open. The index can hold
// any number of distinct measurements (a denied record keeps the measurement of a report that
// failed its signature check, so anyone who can start a handshake chooses one), so when the
// table is full and a new measurement arrives, the table keeps the smallest ones: it drops the
// greatest (or does not take the new one when that is the greatest) and lowers `limit` to it.
// Invariant: every measurement on disk that is below `limit` is in the table with its exact
// counts, and every measurement in the table is below `limit`. A query whose page fits in the
// table is answered from it; otherwise the caller counts the measurements from `limit` on by
// scanning the index from there (store_query_measurements). `limit` never rises while the store
// is open: measurements dropped from the table are counted from disk until the next open
// rebuilds the table.
//
// WARNING: the counts equal the index as long as a batch never puts an index key that is
// already on disk. Record keys are unique within a run (per-worker seqs); across a restart a
// collision needs the same time_ns, worker and seq, and the same measurement and verdict, for
// the index to keep one entry while the table counts two. Such a put would also overwrite a
// record, which `atlsctl audit verify` reports; checking every put against RocksDB would cost a
// read per decision on the durable path, so it is not done.
struct store_counts {
    pthread_mutex_t mu; // guards everything up to `staged`; the store thread writes, any reads
    uint32_t entries_max;
    uint32_t n;         // measurements tracked
    uint32_t *order;    // [entries_max] indexes into `pool`, by measurement
    uint32_t *free_idx; // [entries_max] stack of unused `pool` indexes
    uint32_t n_free;
    struct store_measurement_count *pool; // [entries_max]
    bool limited;
    uint8_t limit[STORE_MEASUREMENT_BYTES];
    bool forgotten; // invalidated: nothing is tracked until the next open
    bool warned;    // the first overflow has been logged

    // Store thread only.
    struct staged *staged; // [staged_max]
    uint32_t n_staged;
    uint32_t staged_max;
};

struct store_counts *store_counts_new(uint32_t entries_max, uint32_t staged_max) {
    ASSERT(entries_max >= 1);
    ASSERT(staged_max >= 1);
    struct store_counts *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->entries_max = entries_max;
    c->staged_max = staged_max;
    c->order = calloc(entries_max, sizeof(*c->order));
    c->free_idx = calloc(entries_max, sizeof(*c->free_idx));
    c->pool = calloc(entries_max, sizeof(*c->pool));
    c->staged = calloc(staged_max, sizeof(*c->staged));
    if (c->order == NULL || c->free_idx == NULL || c->pool == NULL || c->staged == NULL) {
        free(c->order);
        free(c->free_idx);
        free(c->pool);
        free(c->staged);
        free(c);
        return NULL;
    }
    for (uint32_t i = 0; i < entries_max; i++) {
        c->free_idx[i] = entries_max - 1 - i; // pop order 0, 1, 2, ...
    }
    c->n_free = entries_max;
    int prc = pthread_mutex_init(&c->mu, NULL);
    ASSERT(prc == 0); // the default attributes allocate nothing on Linux
    return c;
}

void store_counts_free(struct store_counts *counts) {
    if (counts == NULL) {
        return;
    }
    pthread_mutex_destroy(&counts->mu);
    free(counts->order);
    counts->order = NULL;
    free(counts->free_idx);
    counts->free_idx = NULL;
    free(counts->pool);
    counts->pool = NULL;
    free(counts->staged);
    counts->staged = NULL;
    free(counts);
}

static const uint8_t *meas_at(const struct store_counts *c, uint32_t pos) {
    return c->pool[c->order[pos]].measurement;
}

// lower_bound returns the first position whose measurement is >= `m`.
static uint32_t lower_bound(const struct store_counts *c, const uint8_t *m) {
    uint32_t lo = 0;
    uint32_t hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (memcmp(meas_at(c, mid), m, STORE_MEASUREMENT_BYTES) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool is_tracked_range(const struct store_counts *c, const uint8_t *m) {
    return !c->limited || memcmp(m, c->limit, STORE_MEASUREMENT_BYTES) < 0;
}

// set_limit lowers the limit to `m` (every measurement tracked is below it).
static void set_limit(struct store_counts *c, const uint8_t *m) {
    ASSERT(is_tracked_range(c, m));
    memcpy(c->limit, m, STORE_MEASUREMENT_BYTES);
    c->limited = true;
    if (!c->warned) {
        c->warned = true;
        char hex[2 * 8 + 1];
        core_base_hex_encode(hex, m, 8);
        LOG_WARN("audit: more than %u distinct measurements on record; measurements from %s... "
                 "on are counted from disk when the statistics need them",
                 c->entries_max, hex);
    }
}

// find_or_insert returns the entry of `m` (below the limit), making room for it when new. NULL
// when the table is full and `m` is greater than every tracked measurement: the limit then
// drops to `m`.
static struct store_measurement_count *find_or_insert(struct store_counts *c, const uint8_t *m) {
    // Keys arrive sorted at load, most of them repeating the last measurement: check the end
    // before searching.
    int r = c->n > 0 ? memcmp(meas_at(c, c->n - 1), m, STORE_MEASUREMENT_BYTES) : -1;
    if (r == 0) {
        return &c->pool[c->order[c->n - 1]];
    }
    uint32_t pos = c->n;
    if (r > 0) {
        pos = lower_bound(c, m);
        if (memcmp(meas_at(c, pos), m, STORE_MEASUREMENT_BYTES) == 0) {
            return &c->pool[c->order[pos]];
        }
    }
    if (c->n == c->entries_max) {
        if (pos == c->n) {
            set_limit(c, m);
            return NULL;
        }
        // Drop the greatest; it (and everything above it) is counted from disk from now on.
        uint32_t last = c->order[c->n - 1];
        set_limit(c, c->pool[last].measurement);
        c->n--;
        c->free_idx[c->n_free++] = last;
    }
    ASSERT(c->n_free > 0);
    uint32_t idx = c->free_idx[--c->n_free];
    memset(&c->pool[idx], 0, sizeof(c->pool[idx]));
    memcpy(c->pool[idx].measurement, m, STORE_MEASUREMENT_BYTES);
    // Only the 4-byte indexes move, not the 96-byte entries: an insertion in a full table of
    // STORE_COUNTS_ENTRIES_MAX moves at most 64 KiB.
    memmove(&c->order[pos + 1], &c->order[pos], (size_t)(c->n - pos) * sizeof(*c->order));
    c->order[pos] = idx;
    c->n++;
    return &c->pool[idx];
}

// forget_all empties the table and sets the limit to the smallest measurement: every query then
// counts from disk, so the answer stays right whatever went wrong. Logs `why` the first time.
static void forget_all(struct store_counts *c, const char *why) {
    if (c->forgotten) {
        return;
    }
    LOG_ERROR("audit: %s; the measurement statistics count from disk until the next start", why);
    for (uint32_t pos = 0; pos < c->n; pos++) {
        c->free_idx[c->n_free++] = c->order[pos];
    }
    c->n = 0;
    memset(c->limit, 0, sizeof(c->limit));
    c->limited = true;
    c->forgotten = true;
    c->warned = true;
    ASSERT(c->n_free == c->entries_max);
}

// apply counts one index entry `mk` in (`delta` +1) or out (-1). Caller holds `mu`.
static void apply(struct store_counts *c, const uint8_t *mk, int delta) {
    const uint8_t *m = mk;
    if (!is_tracked_range(c, m)) {
        return;
    }
    uint32_t verdict = store_be32_get(mk + STORE_MEASUREMENT_BYTES);
    if (delta > 0) {
        struct store_measurement_count *e = find_or_insert(c, m);
        if (e == NULL) {
            return;
        }
        if (verdict < STORE_VERDICT_SLOTS) {
            e->by_verdict[verdict]++;
        }
        e->total++;
        return;
    }
    uint32_t pos = lower_bound(c, m);
    struct store_measurement_count *e = NULL;
    if (pos < c->n && memcmp(meas_at(c, pos), m, STORE_MEASUREMENT_BYTES) == 0) {
        e = &c->pool[c->order[pos]];
    }
    if (e == NULL || e->total == 0 ||
        (verdict < STORE_VERDICT_SLOTS && e->by_verdict[verdict] == 0)) {
        // The caller deletes only entries that exist on disk, which the table counted: this is
        // a bug here. Never answer wrong counts: fall back to the index for good.
        forget_all(c, "measurement counts disagree with the index");
        return;
    }
    if (verdict < STORE_VERDICT_SLOTS) {
        e->by_verdict[verdict]--;
    }
    e->total--;
    if (e->total == 0) {
        c->free_idx[c->n_free++] = c->order[pos];
        memmove(&c->order[pos], &c->order[pos + 1], (size_t)(c->n - pos - 1) * sizeof(*c->order));
        c->n--;
    }
}

void store_counts_invalidate(struct store_counts *counts) {
    ASSERT(counts != NULL);
    pthread_mutex_lock(&counts->mu);
    forget_all(counts, "an update of the measurement counts is unknown");
    pthread_mutex_unlock(&counts->mu);
}

int store_counts_load(struct store_counts *counts, char *err, size_t errlen, struct store_db *db) {
    ASSERT(counts != NULL);
    ASSERT(db != NULL);
    struct store_iter *it = store_rocksdb_iter_new(db, STORE_CF_BY_MEASUREMENT);
    if (it == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_lock(&counts->mu);
    ASSERT(counts->n == 0 && !counts->limited);
    for (store_rocksdb_iter_seek_first(it); store_rocksdb_iter_is_valid(it);
         store_rocksdb_iter_next(it)) {
        size_t klen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        if (klen != STORE_MEAS_KEY_BYTES) {
            continue; // not an index entry: the query scan skips it too
        }
        apply(counts, k, +1);
        if (counts->limited) {
            break; // keys are sorted: every further key is at or above the limit
        }
    }
    pthread_mutex_unlock(&counts->mu);
    int rc = store_rocksdb_iter_error(it, err, errlen);
    store_rocksdb_iter_free(it);
    return rc;
}

void store_counts_stage(struct store_counts *counts, const uint8_t mk[STORE_MEAS_KEY_BYTES],
                        int delta) {
    ASSERT(counts != NULL);
    ASSERT(delta == 1 || delta == -1);
    ASSERT(counts->n_staged < counts->staged_max); // sized for the largest batch at open
    struct staged *st = &counts->staged[counts->n_staged++];
    memcpy(st->mk, mk, STORE_MEAS_KEY_BYTES);
    st->delta = (int8_t)delta;
}

void store_counts_discard(struct store_counts *counts) {
    ASSERT(counts != NULL);
    counts->n_staged = 0;
}

static int staged_cmp(const void *a, const void *b) {
    const struct staged *x = a;
    const struct staged *y = b;
    int r = memcmp(x->mk, y->mk, STORE_MEAS_KEY_BYTES);
    if (r != 0) {
        return r;
    }
    return (int)x->delta - (int)y->delta;
}

void store_counts_commit(struct store_counts *counts) {
    ASSERT(counts != NULL);
    struct store_counts *c = counts;
    // Sorted, a key put (or deleted) twice by one batch is one entry on disk and is counted
    // once, like the index holds it. Sorting outside the lock keeps the readers' wait short.
    qsort(c->staged, c->n_staged, sizeof(*c->staged), staged_cmp);
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < c->n_staged; i++) {
        if (i > 0 && staged_cmp(&c->staged[i - 1], &c->staged[i]) == 0) {
            continue;
        }
        apply(c, c->staged[i].mk, c->staged[i].delta);
    }
    pthread_mutex_unlock(&c->mu);
    c->n_staged = 0;
}

int store_counts_copy(struct store_counts *counts, struct store_measurement_count *out,
                      size_t *out_n, size_t cap, uint8_t out_from[STORE_MEASUREMENT_BYTES],
                      bool *out_partial) {
    ASSERT(counts != NULL);
    ASSERT(out_n != NULL);
    ASSERT(out != NULL || cap == 0);
    ASSERT(out_from != NULL && out_partial != NULL);
    struct store_counts *c = counts;
    pthread_mutex_lock(&c->mu);
    size_t n = c->n < cap ? c->n : cap;
    for (size_t i = 0; i < n; i++) {
        out[i] = c->pool[c->order[i]];
    }
    bool more = c->n > cap;
    bool partial = !more && c->limited;
    if (partial) {
        memcpy(out_from, c->limit, STORE_MEASUREMENT_BYTES);
    }
    pthread_mutex_unlock(&c->mu);
    ASSERT(n <= cap);
    *out_n = n;
    *out_partial = partial;
    return more ? -ENOSPC : 0;
}
