// store_rocksdb.c: the RocksDB C API behind the store. The only file that sees RocksDB's
// `char **errptr`: every error becomes -errno plus a one-line reason here (rule 3).
#include <errno.h>
#include <rocksdb/c.h>

#include "core_base.h"
#include "store_internal.h"

const char *const store_cf_names[STORE_CF_COUNT] = {
    [STORE_CF_RECORDS] = "default",
    [STORE_CF_CHAIN] = "chain",
    [STORE_CF_BY_VERDICT] = "by_verdict",
    [STORE_CF_BY_MEASUREMENT] = "by_measurement",
    [STORE_CF_META] = "meta",
};

struct store_db {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT];
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_readoptions_t *ro;
};

struct store_batch {
    rocksdb_writebatch_t *wb;
};

struct store_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
};

// errno_of maps RocksDB's status text to an errno and frees it.
static int take_error(char *rerr, char *err, size_t errlen, const char *what) {
    ASSERT(rerr != NULL);
    int rc = -EIO;
    if (strstr(rerr, "No space left") != NULL) {
        rc = -ENOSPC;
    } else if (strstr(rerr, "Read-only file system") != NULL) {
        rc = -EROFS;
    } else if (strstr(rerr, "Permission denied") != NULL) {
        rc = -EACCES;
    } else if (strstr(rerr, "lock") != NULL || strstr(rerr, "LOCK") != NULL) {
        rc = -EBUSY;
    } else if (strstr(rerr, "does not exist") != NULL ||
               strstr(rerr, "No such file or directory") != NULL) {
        rc = -ENOENT;
    }
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s: %s", what, rerr);
    }
    rocksdb_free(rerr);
    return rc;
}

void store_rocksdb_close(struct store_db *db) {
    if (db == NULL) {
        return;
    }
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        if (db->cf[i] != NULL) {
            rocksdb_column_family_handle_destroy(db->cf[i]);
            db->cf[i] = NULL;
        }
    }
    if (db->db != NULL) {
        rocksdb_close(db->db);
        db->db = NULL;
    }
    if (db->opts != NULL) {
        rocksdb_options_destroy(db->opts);
        db->opts = NULL;
    }
    if (db->wo_sync != NULL) {
        rocksdb_writeoptions_destroy(db->wo_sync);
        db->wo_sync = NULL;
    }
    if (db->wo_nosync != NULL) {
        rocksdb_writeoptions_destroy(db->wo_nosync);
        db->wo_nosync = NULL;
    }
    if (db->ro != NULL) {
        rocksdb_readoptions_destroy(db->ro);
        db->ro = NULL;
    }
    free(db);
}

int store_rocksdb_open(struct store_db **out_db, char *err, size_t errlen, const char *dir,
                       bool read_only) {
    ASSERT(out_db != NULL);
    ASSERT(dir != NULL);
    *out_db = NULL;
    struct store_db *db = calloc(1, sizeof(*db));
    if (db == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    db->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(db->opts, read_only ? 0 : 1);
    rocksdb_options_set_create_missing_column_families(db->opts, read_only ? 0 : 1);
    // Audit volume is small: keep RocksDB's own footprint bounded (rule 6 admission).
    rocksdb_options_set_max_open_files(db->opts, 256);
    rocksdb_options_set_keep_log_file_num(db->opts, 4);
    // Memtables: at most STORE_MEMTABLE_BYTES x 2 per column family (one filling, one flushing),
    // so the gateway's resident memory is bounded however long it runs; the stat below lets a
    // soak tell this bounded growth apart from a leak.
    rocksdb_options_set_write_buffer_size(db->opts, STORE_MEMTABLE_BYTES);
    rocksdb_options_set_max_write_buffer_number(db->opts, 2);
    // WARNING: Debian's librocksdb 7.8 is built with assert() enabled. On a full disk, once a
    // write to its info LOG (in the same directory) has failed, the next LOG line aborts the
    // process (WritableFileWriter::AssertFalseAndGetStatusForPrevError) — and RocksDB logs the
    // WAL error at ERROR level right when a write fails, which would crash the gateway instead
    // of failing closed. Only FATAL lines go to the LOG; every error still reaches us as a
    // status string and is logged by store.c (tests/store: DiskFullTurnsStoreUnhealthy).
    rocksdb_options_set_info_log_level(db->opts, 4 /* FATAL_LEVEL */);
    db->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wo_sync, 1);
    db->wo_nosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wo_nosync, 0);
    db->ro = rocksdb_readoptions_create();

    const rocksdb_options_t *cf_opts[STORE_CF_COUNT];
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        cf_opts[i] = db->opts;
    }
    char *rerr = NULL;
    if (read_only) {
        db->db = rocksdb_open_for_read_only_column_families(
            db->opts, dir, STORE_CF_COUNT, (const char *const *)store_cf_names, cf_opts, db->cf,
            0, &rerr);
    } else {
        db->db = rocksdb_open_column_families(db->opts, dir, STORE_CF_COUNT,
                                              (const char *const *)store_cf_names, cf_opts, db->cf,
                                              &rerr);
    }
    if (rerr != NULL) {
        int rc = take_error(rerr, err, errlen, "rocksdb open");
        store_rocksdb_close(db);
        return rc;
    }
    ASSERT(db->db != NULL);
    *out_db = db;
    return 0;
}

struct store_batch *store_rocksdb_batch_new(void) {
    struct store_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->wb = rocksdb_writebatch_create();
    return b;
}

void store_rocksdb_batch_free(struct store_batch *batch) {
    if (batch == NULL) {
        return;
    }
    rocksdb_writebatch_destroy(batch->wb);
    batch->wb = NULL;
    free(batch);
}

void store_rocksdb_batch_clear(struct store_batch *batch) {
    rocksdb_writebatch_clear(batch->wb);
}

uint32_t store_rocksdb_batch_count(const struct store_batch *batch) {
    int n = rocksdb_writebatch_count(batch->wb);
    ASSERT(n >= 0);
    return (uint32_t)n;
}

void store_rocksdb_batch_put(struct store_db *db, struct store_batch *batch, enum store_cf cf,
                             const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    ASSERT(cf < STORE_CF_COUNT);
    rocksdb_writebatch_put_cf(batch->wb, db->cf[cf], (const char *)key, klen, (const char *)val,
                              vlen);
}

void store_rocksdb_batch_delete(struct store_db *db, struct store_batch *batch, enum store_cf cf,
                                const uint8_t *key, size_t klen) {
    ASSERT(cf < STORE_CF_COUNT);
    rocksdb_writebatch_delete_cf(batch->wb, db->cf[cf], (const char *)key, klen);
}

int store_rocksdb_write(struct store_db *db, char *err, size_t errlen, struct store_batch *batch,
                        bool sync) {
    char *rerr = NULL;
    rocksdb_write(db->db, sync ? db->wo_sync : db->wo_nosync, batch->wb, &rerr);
    if (rerr != NULL) {
        return take_error(rerr, err, errlen, "rocksdb write");
    }
    return 0;
}

int store_rocksdb_get(struct store_db *db, uint8_t *out, size_t *out_len, size_t cap,
                      enum store_cf cf, const uint8_t *key, size_t klen) {
    ASSERT(cf < STORE_CF_COUNT);
    ASSERT(out_len != NULL);
    *out_len = 0;
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(db->db, db->ro, db->cf[cf], (const char *)key, klen, &vlen, &rerr);
    if (rerr != NULL) {
        char msg[STORE_ERR_BYTES];
        int rc = take_error(rerr, msg, sizeof(msg), "rocksdb get");
        LOG_ERROR("%s", msg);
        return rc;
    }
    if (v == NULL) {
        return -ENOENT;
    }
    int rc = 0;
    if (vlen > cap) {
        rc = -EMSGSIZE;
    } else {
        memcpy(out, v, vlen);
        *out_len = vlen;
    }
    rocksdb_free(v);
    return rc;
}

struct store_iter *store_rocksdb_iter_new(struct store_db *db, enum store_cf cf) {
    ASSERT(cf < STORE_CF_COUNT);
    struct store_iter *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->ro = rocksdb_readoptions_create();
    it->it = rocksdb_create_iterator_cf(db->db, it->ro, db->cf[cf]);
    return it;
}

void store_rocksdb_iter_free(struct store_iter *it) {
    if (it == NULL) {
        return;
    }
    rocksdb_iter_destroy(it->it);
    it->it = NULL;
    rocksdb_readoptions_destroy(it->ro);
    it->ro = NULL;
    free(it);
}

bool store_rocksdb_iter_is_valid(const struct store_iter *it) {
    return rocksdb_iter_valid(it->it) != 0;
}

void store_rocksdb_iter_seek_first(struct store_iter *it) {
    rocksdb_iter_seek_to_first(it->it);
}

void store_rocksdb_iter_seek_last(struct store_iter *it) {
    rocksdb_iter_seek_to_last(it->it);
}

void store_rocksdb_iter_seek(struct store_iter *it, const uint8_t *key, size_t klen) {
    rocksdb_iter_seek(it->it, (const char *)key, klen);
}

void store_rocksdb_iter_seek_for_prev(struct store_iter *it, const uint8_t *key, size_t klen) {
    rocksdb_iter_seek_for_prev(it->it, (const char *)key, klen);
}

void store_rocksdb_iter_next(struct store_iter *it) {
    rocksdb_iter_next(it->it);
}

void store_rocksdb_iter_prev(struct store_iter *it) {
    rocksdb_iter_prev(it->it);
}

const uint8_t *store_rocksdb_iter_key(const struct store_iter *it, size_t *out_len) {
    return (const uint8_t *)rocksdb_iter_key(it->it, out_len);
}

const uint8_t *store_rocksdb_iter_value(const struct store_iter *it, size_t *out_len) {
    return (const uint8_t *)rocksdb_iter_value(it->it, out_len);
}

int store_rocksdb_iter_error(const struct store_iter *it, char *err, size_t errlen) {
    char *rerr = NULL;
    rocksdb_iter_get_error(it->it, &rerr);
    if (rerr != NULL) {
        return take_error(rerr, err, errlen, "rocksdb iterate");
    }
    return 0;
}

uint64_t store_rocksdb_memtable_bytes(struct store_db *db) {
    ASSERT(db != NULL);
    uint64_t total = 0;
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(db->db, db->cf[i], "rocksdb.cur-size-all-mem-tables", &v) == 0) {
            total += v;
        }
    }
    return total;
}
