// store_test_util.h: helpers shared by the tests of store/: temp dirs, records, waiting for
// durability, raw RocksDB access for tampering, expected counts per measurement.
#ifndef ATLS_STORE_TEST_UTIL_H
#define ATLS_STORE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <poll.h>
#include <rocksdb/c.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core_base.h"
#include "proto.h"
#include "store.h"
#include "store_internal.h"

namespace store_test {

// TempDir is a fresh directory under /tmp removed (recursively) at scope exit.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/atls-store-test-XXXXXX";
        char *p = mkdtemp(tmpl);
        EXPECT_NE(p, nullptr);
        path = p != nullptr ? p : "";
    }
    ~TempDir() {
        if (!path.empty()) {
            std::string cmd = "chmod -R u+w '" + path + "' 2>/dev/null; rm -rf '" + path + "'";
            int rc = system(cmd.c_str());
            (void)rc;
        }
    }
    std::string sub(const char *name) const { return path + "/" + name; }
};

inline struct store_config config_for(const std::string &dir) {
    struct store_config cfg;
    store_config_defaults(&cfg);
    snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir.c_str());
    cfg.ring_slots_per_worker = 64;
    cfg.batch_max = 32;
    cfg.retention_days = 0;
    cfg.retention_interval_ms = 3600 * 1000; // tests trigger retention explicitly
    return cfg;
}

// Record owns the storage an Atls__AuditRecord points into.
struct Record {
    Atls__AuditRecord rec = ATLS__AUDIT_RECORD__INIT;
    Atls__TcbVersion tcb = ATLS__TCB_VERSION__INIT;
    Atls__FailedCheck check = ATLS__FAILED_CHECK__INIT;
    Atls__FailedCheck *checks[1] = {&check};
    uint8_t meas[48] = {0};
    uint8_t report[1184] = {0};
    std::string user = "app_rw", db = "bank", addr = "10.0.0.7", node = "proxy-1";
    std::string code = "MEASUREMENT_NOT_ALLOWED", detail = "measurement not in policy";

    Record(uint64_t time_ns, Atls__Verdict verdict, uint8_t meas_byte = 0xa1) {
        memset(meas, meas_byte, sizeof(meas));
        for (size_t i = 0; i < sizeof(report); i++) {
            report[i] = (uint8_t)(i ^ meas_byte);
        }
        rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
        rec.time_ns = time_ns;
        rec.verdict = verdict;
        rec.node_id = (char *)node.c_str();
        rec.client_addr = (char *)addr.c_str();
        rec.client_port = 51000;
        rec.db_user = (char *)user.c_str();
        rec.db_name = (char *)db.c_str();
        rec.measurement = {sizeof(meas), meas};
        rec.report = {sizeof(report), report};
        tcb.snp = 8;
        rec.reported_tcb = &tcb;
        if (verdict == ATLS__VERDICT__VERDICT_DENIED) {
            check.code = (char *)code.c_str();
            check.detail = (char *)detail.c_str();
            rec.n_failed_checks = 1;
            rec.failed_checks = checks;
        }
    }
};

// wait_durable waits (eventfd + poll, up to 20 s) until `worker`'s durable seq reaches `seq`.
inline bool wait_durable(struct store *s, uint32_t worker, uint64_t seq) {
    int efd = store_worker_eventfd(s, worker);
    for (int i = 0; i < 2000; i++) {
        if (store_durable_seq(s, worker) >= seq) {
            return true;
        }
        struct pollfd pfd = {efd, POLLIN, 0};
        if (poll(&pfd, 1, 10) > 0) {
            uint64_t v;
            ssize_t n = read(efd, &v, sizeof(v));
            (void)n;
        }
    }
    return store_durable_seq(s, worker) >= seq;
}

// push_ok pushes, retrying while the ring is full.
inline uint64_t push_ok(struct store *s, uint32_t worker, const Atls__AuditRecord *rec) {
    for (;;) {
        uint64_t seq = 0;
        int rc = store_audit_push(s, &seq, worker, rec);
        if (rc == -EAGAIN) {
            usleep(100);
            continue;
        }
        EXPECT_EQ(rc, 0);
        return seq;
    }
}

// collect_fn appends each record (key + unpacked fields of interest) to a vector.
struct Seen {
    struct store_key key;
    Atls__Verdict verdict;
    uint64_t global_seq;
    std::string user;
};

inline int collect_fn(void *arg, const struct store_key *key, const uint8_t *value, size_t len) {
    auto *out = static_cast<std::vector<Seen> *>(arg);
    Atls__AuditRecord *r = atls__audit_record__unpack(nullptr, len, value);
    if (r == nullptr) {
        return -EBADMSG;
    }
    out->push_back({*key, r->verdict, r->global_seq, r->db_user});
    atls__audit_record__free_unpacked(r, nullptr);
    return 0;
}

// RawDb opens an audit directory with the RocksDB C API directly (tampering tests).
struct RawDb {
    rocksdb_t *db = nullptr;
    rocksdb_options_t *opts = nullptr;
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT] = {};
    rocksdb_writeoptions_t *wo = nullptr;
    rocksdb_readoptions_t *ro = nullptr;

    explicit RawDb(const std::string &dir) {
        opts = rocksdb_options_create();
        const rocksdb_options_t *cfo[STORE_CF_COUNT];
        for (auto &o : cfo) {
            o = opts;
        }
        char *err = nullptr;
        db = rocksdb_open_column_families(opts, dir.c_str(), STORE_CF_COUNT, store_cf_names, cfo,
                                          cf, &err);
        EXPECT_EQ(err, nullptr) << err;
        wo = rocksdb_writeoptions_create();
        rocksdb_writeoptions_set_sync(wo, 1);
        ro = rocksdb_readoptions_create();
    }
    ~RawDb() {
        for (auto *h : cf) {
            if (h != nullptr) {
                rocksdb_column_family_handle_destroy(h);
            }
        }
        if (db != nullptr) {
            rocksdb_close(db);
        }
        rocksdb_options_destroy(opts);
        rocksdb_writeoptions_destroy(wo);
        rocksdb_readoptions_destroy(ro);
    }
    std::string get(enum store_cf c, const std::string &k) {
        char *err = nullptr;
        size_t len = 0;
        char *v = rocksdb_get_cf(db, ro, cf[c], k.data(), k.size(), &len, &err);
        EXPECT_EQ(err, nullptr);
        std::string out = v != nullptr ? std::string(v, len) : std::string();
        rocksdb_free(v);
        return out;
    }
    void put(enum store_cf c, const std::string &k, const std::string &v) {
        char *err = nullptr;
        rocksdb_put_cf(db, wo, cf[c], k.data(), k.size(), v.data(), v.size(), &err);
        EXPECT_EQ(err, nullptr);
    }
    void del(enum store_cf c, const std::string &k) {
        char *err = nullptr;
        rocksdb_delete_cf(db, wo, cf[c], k.data(), k.size(), &err);
        EXPECT_EQ(err, nullptr);
    }
};

inline std::string key_bytes(const struct store_key &k);
inline std::string chain_key(uint64_t gseq);

// Tamper is what someone with write access to an audit directory can do to it, through RocksDB
// directly (the store's own layout, store_internal.h).
struct Tamper : RawDb {
    using RawDb::RawDb;
    // chain_value returns record `gseq`'s chain entry: key (20 B) | SHA-256 (32 B).
    std::string chain_value(uint64_t gseq) {
        return get(STORE_CF_CHAIN, chain_key(gseq));
    }
    std::string digest(uint64_t gseq) {
        return chain_value(gseq).substr(STORE_KEY_BYTES);
    }
    // record unpacks record `gseq` (the caller frees it with atls__audit_record__free_unpacked).
    Atls__AuditRecord *record(uint64_t gseq) {
        std::string v = get(STORE_CF_RECORDS, chain_value(gseq).substr(0, STORE_KEY_BYTES));
        return atls__audit_record__unpack(nullptr, v.size(), (const uint8_t *)v.data());
    }
    // drop removes record `gseq` with its chain entry and its index entries.
    void drop(uint64_t gseq) {
        std::string k = chain_value(gseq).substr(0, STORE_KEY_BYTES);
        Atls__AuditRecord *r = record(gseq);
        EXPECT_NE(r, nullptr);
        if (r != nullptr && r->kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
            del(STORE_CF_BY_VERDICT, verdict_entry(r->verdict, k));
            del(STORE_CF_BY_MEASUREMENT, meas_entry(r->measurement, r->verdict, k));
        }
        atls__audit_record__free_unpacked(r, nullptr);
        del(STORE_CF_RECORDS, k);
        del(STORE_CF_CHAIN, chain_key(gseq));
    }
    // put_pos writes the meta position `name` ("head" or "anchor").
    void put_pos(const char *name, uint64_t gseq, const std::string &digest) {
        uint8_t raw[8];
        store_be64_put(raw, gseq);
        put(STORE_CF_META, name, std::string((const char *)raw, sizeof(raw)) + digest);
    }
    static std::string verdict_entry(Atls__Verdict v, const std::string &key) {
        uint8_t raw[4];
        store_be32_put(raw, (uint32_t)v);
        return std::string((const char *)raw, sizeof(raw)) + key;
    }
    static std::string meas_entry(ProtobufCBinaryData m, Atls__Verdict v, const std::string &key) {
        std::string out(STORE_MEASUREMENT_BYTES, '\0');
        if (m.len == STORE_MEASUREMENT_BYTES) {
            memcpy(&out[0], m.data, STORE_MEASUREMENT_BYTES);
        }
        return out + verdict_entry(v, key);
    }
};

inline std::string key_bytes(const struct store_key &k) {
    uint8_t raw[STORE_KEY_BYTES];
    store_key_encode(raw, &k);
    return std::string((const char *)raw, sizeof(raw));
}

inline std::string chain_key(uint64_t gseq) {
    uint8_t raw[8];
    store_be64_put(raw, gseq);
    return std::string((const char *)raw, sizeof(raw));
}

// ---- Decision counts per measurement ----

using Meas = std::array<uint8_t, STORE_MEASUREMENT_BYTES>;

struct MeasCount {
    uint64_t by[STORE_VERDICT_SLOTS] = {};
    uint64_t total = 0;
};

// CountModel is what the measurement index should hold, kept by a test from the decisions it
// pushed and those retention should have deleted; a decision without evidence counts under the
// all-zero measurement.
struct CountModel {
    std::map<Meas, MeasCount> m;
    void add(const Atls__AuditRecord &rec, int delta) {
        if (rec.kind != ATLS__AUDIT_KIND__AUDIT_KIND_DECISION) {
            return;
        }
        Meas k{};
        if (rec.measurement.len == STORE_MEASUREMENT_BYTES) {
            memcpy(k.data(), rec.measurement.data, STORE_MEASUREMENT_BYTES);
        }
        MeasCount &c = m[k];
        c.by[rec.verdict] += (uint64_t)(int64_t)delta;
        c.total += (uint64_t)(int64_t)delta;
        if (c.total == 0) {
            m.erase(k);
        }
    }
    uint64_t total() const {
        uint64_t t = 0;
        for (const auto &e : m) {
            t += e.second.total;
        }
        return t;
    }
};

// MeasAnswer is what store_query_measurements (or the scan, or the model) answers for a cap.
struct MeasAnswer {
    int rc = 0;
    std::vector<struct store_measurement_count> out;
};

// query_measurements asks the store (from memory) or, with `scan`, the whole index.
inline MeasAnswer query_measurements(struct store *s, size_t cap, bool scan = false) {
    MeasAnswer a;
    a.out.resize(cap + 1);
    size_t n = 12345;
    a.rc = scan ? store_query_measurements_scan(s, a.out.data(), &n, cap)
                : store_query_measurements(s, a.out.data(), &n, cap);
    EXPECT_LE(n, cap);
    a.out.resize(n <= cap ? n : cap);
    return a;
}

// expected_measurements is the answer the model gives for `cap`.
inline MeasAnswer expected_measurements(const CountModel &model, size_t cap) {
    MeasAnswer a;
    for (const auto &e : model.m) {
        if (a.out.size() == cap) {
            a.rc = -ENOSPC;
            break;
        }
        struct store_measurement_count c;
        memset(&c, 0, sizeof(c));
        memcpy(c.measurement, e.first.data(), STORE_MEASUREMENT_BYTES);
        memcpy(c.by_verdict, e.second.by, sizeof(c.by_verdict));
        c.total = e.second.total;
        a.out.push_back(c);
    }
    return a;
}

// same_answer compares two answers field by field and names the first difference.
inline ::testing::AssertionResult same_answer(const MeasAnswer &got, const MeasAnswer &want) {
    if (got.rc != want.rc) {
        return ::testing::AssertionFailure() << "rc " << got.rc << ", want " << want.rc;
    }
    if (got.out.size() != want.out.size()) {
        return ::testing::AssertionFailure()
               << got.out.size() << " measurements, want " << want.out.size();
    }
    for (size_t i = 0; i < got.out.size(); i++) {
        const auto &g = got.out[i];
        const auto &w = want.out[i];
        if (memcmp(g.measurement, w.measurement, STORE_MEASUREMENT_BYTES) != 0) {
            return ::testing::AssertionFailure()
                   << "measurement " << i << " starts " << (int)g.measurement[0] << ", want "
                   << (int)w.measurement[0];
        }
        for (uint32_t v = 0; v < STORE_VERDICT_SLOTS; v++) {
            if (g.by_verdict[v] != w.by_verdict[v]) {
                return ::testing::AssertionFailure()
                       << "measurement " << i << " verdict " << v << ": " << g.by_verdict[v]
                       << ", want " << w.by_verdict[v];
            }
        }
        if (g.total != w.total) {
            return ::testing::AssertionFailure()
                   << "measurement " << i << " total " << g.total << ", want " << w.total;
        }
    }
    return ::testing::AssertionSuccess();
}

// counts_match checks store_query_measurements against the model and against a scan of the
// index, for `cap`.
inline ::testing::AssertionResult counts_match(struct store *s, const CountModel &model,
                                               size_t cap) {
    MeasAnswer want = expected_measurements(model, cap);
    auto r = same_answer(query_measurements(s, cap), want);
    if (!r) {
        return r << " (cap " << cap << ", from the store)";
    }
    r = same_answer(query_measurements(s, cap, true), want);
    if (!r) {
        return r << " (cap " << cap << ", scanning the index)";
    }
    return r;
}

} // namespace store_test

#endif // ATLS_STORE_TEST_UTIL_H
