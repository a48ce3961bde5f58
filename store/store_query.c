// store_query.c: read-side queries for the HTTP API and atlsctl (newest-first listings with
// stable cursors, denials through the verdict index, counts per measurement from memory or the
// index, get by key).
// Callable from any thread: RocksDB iterators and gets are thread-safe against the writer.
#include <errno.h>

#include "core_base.h"
#include "store_internal.h"

static int check_limit(uint32_t limit) {
    return limit >= 1 && limit <= STORE_QUERY_LIMIT_MAX ? 0 : -EINVAL;
}

// finish_iter frees `it` and folds an iteration error into `rc`.
static int finish_iter(struct store_iter *it, int rc) {
    char err[STORE_ERR_BYTES];
    int irc = store_rocksdb_iter_error(it, err, sizeof(err));
    store_rocksdb_iter_free(it);
    if (irc != 0) {
        LOG_ERROR("%s", err);
        return rc != 0 ? rc : irc;
    }
    return rc;
}

int store_query_list(struct store *store, char *out_next_cursor, const struct store_list_query *q,
                     store_record_fn fn, void *arg) {
    ASSERT(store != NULL);
    ASSERT(out_next_cursor != NULL);
    ASSERT(q != NULL);
    ASSERT(fn != NULL);
    out_next_cursor[0] = '\0';
    if (check_limit(q->limit) != 0) {
        return -EINVAL;
    }
    bool has_cursor = q->cursor[0] != '\0';
    struct store_key ck;
    uint8_t craw[STORE_KEY_BYTES];
    if (has_cursor) {
        if (strnlen(q->cursor, sizeof(q->cursor)) == sizeof(q->cursor) ||
            store_key_parse(&ck, q->cursor) != 0) {
            return -EINVAL;
        }
        store_key_encode(craw, &ck);
    }
    struct store_iter *it = store_rocksdb_iter_new(store->db, STORE_CF_RECORDS);
    if (it == NULL) {
        return -ENOMEM;
    }
    if (has_cursor) {
        // The cursor is the last key of the previous page: continue strictly below it, whether
        // or not that record still exists.
        store_rocksdb_iter_seek_for_prev(it, craw, sizeof(craw));
        size_t klen = 0;
        if (store_rocksdb_iter_is_valid(it)) {
            const uint8_t *k = store_rocksdb_iter_key(it, &klen);
            if (klen == sizeof(craw) && memcmp(k, craw, sizeof(craw)) == 0) {
                store_rocksdb_iter_prev(it);
            }
        }
    } else {
        store_rocksdb_iter_seek_last(it);
    }
    uint32_t n = 0;
    int rc = 0;
    struct store_key last = {0};
    for (; store_rocksdb_iter_is_valid(it); store_rocksdb_iter_prev(it)) {
        size_t klen = 0;
        size_t vlen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        struct store_key key;
        if (store_key_decode(&key, k, klen) != 0) {
            continue; // not a record key: skip rather than fail the listing
        }
        if (key.time_ns < q->since_ns) {
            break;
        }
        if (n == q->limit) {
            store_key_format(out_next_cursor, &last); // at least one more record exists
            break;
        }
        const uint8_t *v = store_rocksdb_iter_value(it, &vlen);
        int frc = fn(arg, &key, v, vlen);
        if (frc != 0) {
            rc = frc < 0 ? frc : 0;
            break;
        }
        last = key;
        n++;
    }
    return finish_iter(it, rc);
}

int store_query_latest(struct store *store, uint32_t limit, store_record_fn fn, void *arg) {
    struct store_list_query q;
    memset(&q, 0, sizeof(q));
    q.limit = limit;
    char next[STORE_CURSOR_BYTES];
    return store_query_list(store, next, &q, fn, arg);
}

int store_query_denied(struct store *store, uint32_t limit, store_record_fn fn, void *arg) {
    ASSERT(store != NULL);
    ASSERT(fn != NULL);
    if (check_limit(limit) != 0) {
        return -EINVAL;
    }
    uint8_t *value = malloc(STORE_VALUE_BYTES_MAX);
    struct store_iter *it = store_rocksdb_iter_new(store->db, STORE_CF_BY_VERDICT);
    if (value == NULL || it == NULL) {
        free(value);
        store_rocksdb_iter_free(it);
        return -ENOMEM;
    }
    uint8_t upper[STORE_VERDICT_KEY_BYTES];
    store_be32_put(upper, (uint32_t)ATLS__VERDICT__VERDICT_DENIED);
    memset(upper + 4, 0xff, STORE_KEY_BYTES);
    uint32_t n = 0;
    int rc = 0;
    for (store_rocksdb_iter_seek_for_prev(it, upper, sizeof(upper));
         store_rocksdb_iter_is_valid(it) && n < limit; store_rocksdb_iter_prev(it)) {
        size_t klen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        if (klen != STORE_VERDICT_KEY_BYTES ||
            store_be32_get(k) != (uint32_t)ATLS__VERDICT__VERDICT_DENIED) {
            break;
        }
        struct store_key key;
        ASSERT(store_key_decode(&key, k + 4, STORE_KEY_BYTES) == 0);
        size_t vlen = 0;
        int grc = store_rocksdb_get(store->db, value, &vlen, STORE_VALUE_BYTES_MAX,
                                    STORE_CF_RECORDS, k + 4, STORE_KEY_BYTES);
        if (grc == -ENOENT) {
            continue; // deleted by retention between the index read and this get
        }
        if (grc != 0) {
            rc = grc;
            break;
        }
        int frc = fn(arg, &key, value, vlen);
        if (frc != 0) {
            rc = frc < 0 ? frc : 0;
            break;
        }
        n++;
    }
    free(value);
    return finish_iter(it, rc);
}

// scan_measurements counts the by_measurement index from the first key at or above `from`
// (NULL: from the start) into `out`, after the `*io_n` entries already there (all of them below
// `from`), and updates `*io_n`. Returns 0, -ENOSPC when more than `cap` measurements would be
// needed (the first `cap` are filled), -ENOMEM, -EIO. O(index entries from `from` on).
static int scan_measurements(struct store *store, struct store_measurement_count *out, size_t *io_n,
                             size_t cap, const uint8_t *from) {
    ASSERT(*io_n <= cap);
    atomic_fetch_add_explicit(&store->measurement_scans, 1, memory_order_relaxed);
    struct store_iter *it = store_rocksdb_iter_new(store->db, STORE_CF_BY_MEASUREMENT);
    if (it == NULL) {
        return -ENOMEM;
    }
    size_t n = *io_n;
    int rc = 0;
    if (from != NULL) {
        store_rocksdb_iter_seek(it, from, STORE_MEASUREMENT_BYTES);
    } else {
        store_rocksdb_iter_seek_first(it);
    }
    for (; store_rocksdb_iter_is_valid(it); store_rocksdb_iter_next(it)) {
        size_t klen = 0;
        const uint8_t *k = store_rocksdb_iter_key(it, &klen);
        if (klen != STORE_MEAS_KEY_BYTES) {
            continue;
        }
        if (n == 0 || memcmp(out[n - 1].measurement, k, STORE_MEASUREMENT_BYTES) != 0) {
            if (n == cap) {
                rc = -ENOSPC;
                break;
            }
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].measurement, k, STORE_MEASUREMENT_BYTES);
            n++;
        }
        uint32_t verdict = store_be32_get(k + STORE_MEASUREMENT_BYTES);
        if (verdict < STORE_VERDICT_SLOTS) {
            out[n - 1].by_verdict[verdict]++;
        }
        out[n - 1].total++;
    }
    *io_n = n;
    return finish_iter(it, rc);
}

int store_query_measurements_scan(struct store *store, struct store_measurement_count *out,
                                  size_t *out_n, size_t cap) {
    ASSERT(store != NULL);
    ASSERT(out_n != NULL);
    ASSERT(out != NULL || cap == 0);
    *out_n = 0;
    return scan_measurements(store, out, out_n, cap, NULL);
}

uint64_t store_query_measurement_scans(const struct store *store) {
    ASSERT(store != NULL);
    return atomic_load_explicit(&store->measurement_scans, memory_order_relaxed);
}

// query_measurements serves store_query_measurements and, with `kept_only`,
// store_query_measurements_kept.
static int query_measurements(struct store *store, struct store_measurement_count *out,
                              size_t *out_n, size_t cap, bool kept_only) {
    ASSERT(store != NULL);
    ASSERT(out_n != NULL);
    ASSERT(out != NULL || cap == 0);
    *out_n = 0;
    if (store->counts == NULL) {
        // Read-only (atlsctl): one scan per query is cheaper than building the table at every
        // open, most of which (verify, show, list) never ask for these counts.
        return scan_measurements(store, out, out_n, cap, NULL);
    }
    uint8_t from[STORE_MEASUREMENT_BYTES];
    bool partial = false;
    int rc = store_counts_copy(store->counts, out, out_n, cap, from, &partial);
    if (rc != 0 || !partial) {
        return rc;
    }
    if (kept_only) {
        return -ENOSPC; // more are on disk, from the table's limit on
    }
    // The table has overflowed and holds fewer measurements than the caller has room for: the
    // rest come from the index, from the table's limit on. The two parts are read a moment
    // apart, each exact at its moment (the store thread may write in between).
    return scan_measurements(store, out, out_n, cap, from);
}

int store_query_measurements(struct store *store, struct store_measurement_count *out,
                             size_t *out_n, size_t cap) {
    return query_measurements(store, out, out_n, cap, false);
}

int store_query_measurements_kept(struct store *store, struct store_measurement_count *out,
                                  size_t *out_n, size_t cap) {
    return query_measurements(store, out, out_n, cap, true);
}

int store_query_get(struct store *store, uint8_t *out, size_t *out_len, size_t cap,
                    const struct store_key *key) {
    ASSERT(store != NULL);
    ASSERT(key != NULL);
    uint8_t raw[STORE_KEY_BYTES];
    store_key_encode(raw, key);
    return store_rocksdb_get(store->db, out, out_len, cap, STORE_CF_RECORDS, raw, sizeof(raw));
}
