// store_audit_test.cc: tests store/store_audit.c and store_ring.c — pushes, the store thread,
// durability acknowledgements, the hash chain, tampering, retention, corrupt slots.
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>

#include "store_test_util.h"

using namespace store_test;

namespace {

struct Opened {
    TempDir t;
    struct store *s = nullptr;
    // `counts_max`: room for distinct measurements in memory (0: store_open's default).
    explicit Opened(uint32_t workers = 1, void (*tweak)(struct store_config *) = nullptr,
                    uint32_t counts_max = 0) {
        struct store_config cfg = config_for(t.path);
        if (tweak != nullptr) {
            tweak(&cfg);
        }
        char err[STORE_ERR_BYTES] = "";
        int rc = counts_max == 0
                     ? store_open(&s, err, sizeof(err), &cfg, workers)
                     : store_open_with_counts(&s, err, sizeof(err), &cfg, workers, counts_max);
        EXPECT_EQ(rc, 0) << err;
    }
    ~Opened() { store_close(s); }
    void close() {
        store_close(s);
        s = nullptr;
    }
};

struct store_verify_result verify(const std::string &dir) {
    struct store_verify_result r;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_audit_verify(&r, err, sizeof(err), dir.c_str()), 0) << err;
    return r;
}

uint64_t base_time() {
    return core_base_wall_ns();
}

TEST(StoreAudit, PushAssignsSeqAndSignalsDurability) {
    Opened o(2);
    uint64_t t0 = base_time();
    Record r(t0, ATLS__VERDICT__VERDICT_ALLOWED);
    uint64_t seq = 0;
    ASSERT_EQ(store_audit_push(o.s, &seq, 1, &r.rec), 0);
    EXPECT_EQ(seq, 1u);
    r.rec.time_ns++;
    ASSERT_EQ(store_audit_push(o.s, &seq, 1, &r.rec), 0);
    EXPECT_EQ(seq, 2u);
    r.rec.time_ns++;
    ASSERT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), 0);
    EXPECT_EQ(seq, 1u); // sequences are per worker
    // The eventfd becomes readable once the batch is durable.
    int efd = store_worker_eventfd(o.s, 1);
    struct pollfd pfd = {efd, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    ASSERT_TRUE(wait_durable(o.s, 1, 2));
    ASSERT_TRUE(wait_durable(o.s, 0, 1));
    struct store_stats st;
    store_stats(o.s, &st);
    EXPECT_EQ(st.records_written, 3u);
    EXPECT_EQ(st.head_global_seq, 3u);
    // The stored record carries the store-assigned fields.
    std::vector<Seen> seen;
    ASSERT_EQ(store_query_latest(o.s, 10, collect_fn, &seen), 0);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0].key.worker, 0u);
    // Chain order is the store thread's append order, not time order: only the set is fixed.
    std::set<uint64_t> gseqs = {seen[0].global_seq, seen[1].global_seq, seen[2].global_seq};
    EXPECT_EQ(gseqs, (std::set<uint64_t>{1, 2, 3}));
    EXPECT_LT(seen[2].global_seq, seen[1].global_seq); // one worker's records keep their order
    EXPECT_EQ(seen[2].key.worker, 1u);
    EXPECT_EQ(seen[2].key.seq, 1u);
    o.close();
    auto v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, 3u);
}

TEST(StoreAudit, PushRejectsInvalidRecords) {
    Opened o(1);
    uint64_t seq = 99;
    Record r(base_time(), ATLS__VERDICT__VERDICT_ALLOWED);
    r.rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_UNSPECIFIED;
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), -EINVAL);
    EXPECT_EQ(seq, 0u);
    Record r2(0, ATLS__VERDICT__VERDICT_ALLOWED);
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r2.rec), -EINVAL);
    Record r3(base_time(), ATLS__VERDICT__VERDICT_UNSPECIFIED);
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r3.rec), -EINVAL);
    Record r4(base_time(), ATLS__VERDICT__VERDICT_ALLOWED);
    r4.rec.measurement.len = 47;
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r4.rec), -EINVAL);
    Record r5(base_time(), ATLS__VERDICT__VERDICT_ALLOWED);
    std::string huge(5000, 'u');
    r5.rec.db_user = (char *)huge.c_str();
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r5.rec), -EMSGSIZE);
    // A disconnect needs no verdict.
    Record d(base_time(), ATLS__VERDICT__VERDICT_UNSPECIFIED);
    d.rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT;
    d.rec.close_reason = (char *)"client closed";
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &d.rec), 0);
    EXPECT_EQ(seq, 1u);
}

TEST(StoreAudit, FullRingReturnsEagainUntilDrained) {
    Opened o(2, [](struct store_config *c) { c->ring_slots_per_worker = 4; });
    store_set_paused(o.s, true);
    Record r(base_time(), ATLS__VERDICT__VERDICT_ALLOWED);
    uint64_t seq = 0;
    for (uint64_t i = 1; i <= 4; i++) {
        r.rec.time_ns++;
        ASSERT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), 0);
        EXPECT_EQ(seq, i);
    }
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), -EAGAIN);
    EXPECT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), -EAGAIN);
    // The other worker's ring is independent.
    ASSERT_EQ(store_audit_push(o.s, &seq, 1, &r.rec), 0);
    struct store_stats st;
    store_stats(o.s, &st);
    EXPECT_EQ(st.ring_full, 2u);
    EXPECT_EQ(store_durable_seq(o.s, 0), 0u);
    store_set_paused(o.s, false);
    ASSERT_TRUE(wait_durable(o.s, 0, 4));
    r.rec.time_ns++;
    ASSERT_EQ(store_audit_push(o.s, &seq, 0, &r.rec), 0);
    EXPECT_EQ(seq, 5u);
    ASSERT_TRUE(wait_durable(o.s, 0, 5));
}

TEST(StoreAudit, ConcurrentProducersAreStoredInTimeOrderAndChainVerifies) {
    constexpr uint32_t kWorkers = 4;
    constexpr uint64_t kPerWorker = 400;
    Opened o(kWorkers, [](struct store_config *c) {
        c->ring_slots_per_worker = 16;
        c->batch_max = 8;
        c->sync = STORE_SYNC_BATCH;
    });
    std::vector<std::thread> threads;
    std::atomic<uint64_t> eagain{0};
    for (uint32_t w = 0; w < kWorkers; w++) {
        threads.emplace_back([&, w] {
            for (uint64_t i = 1; i <= kPerWorker; i++) {
                Record r(core_base_wall_ns(), i % 3 == 0 ? ATLS__VERDICT__VERDICT_DENIED
                                                         : ATLS__VERDICT__VERDICT_ALLOWED);
                for (;;) {
                    uint64_t seq = 0;
                    int rc = store_audit_push(o.s, &seq, w, &r.rec);
                    if (rc == -EAGAIN) {
                        eagain++;
                        std::this_thread::yield();
                        continue;
                    }
                    ASSERT_EQ(rc, 0);
                    ASSERT_EQ(seq, i);
                    break;
                }
            }
            ASSERT_TRUE(wait_durable(o.s, w, kPerWorker));
        });
    }
    for (auto &t : threads) {
        t.join();
    }
    std::vector<Seen> seen;
    char next[STORE_CURSOR_BYTES];
    struct store_list_query q = {};
    q.limit = STORE_QUERY_LIMIT_MAX;
    ASSERT_EQ(store_query_list(o.s, next, &q, collect_fn, &seen), 0);
    ASSERT_EQ(seen.size(), kWorkers * kPerWorker);
    std::set<std::pair<uint32_t, uint64_t>> ids;
    std::set<uint64_t> gseqs;
    for (size_t i = 0; i < seen.size(); i++) {
        if (i > 0) {
            EXPECT_GE(seen[i - 1].key.time_ns, seen[i].key.time_ns); // newest first
        }
        ids.insert({seen[i].key.worker, seen[i].key.seq});
        gseqs.insert(seen[i].global_seq);
    }
    EXPECT_EQ(ids.size(), kWorkers * kPerWorker);
    EXPECT_EQ(gseqs.size(), kWorkers * kPerWorker);
    EXPECT_EQ(*gseqs.begin(), 1u);
    EXPECT_EQ(*gseqs.rbegin(), kWorkers * kPerWorker);
    o.close();
    auto v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, kWorkers * kPerWorker);
}

TEST(StoreAudit, ChainContinuesAcrossReopen) {
    TempDir t;
    struct store_config cfg = config_for(t.path);
    char err[STORE_ERR_BYTES] = "";
    uint64_t now = base_time();
    for (int round = 0; round < 2; round++) {
        struct store *s = nullptr;
        ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
        for (int i = 0; i < 5; i++) {
            Record r(now++, ATLS__VERDICT__VERDICT_ALLOWED);
            push_ok(s, 0, &r.rec);
        }
        store_close(s); // close writes everything pushed
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, 10u);
    EXPECT_EQ(v.last_global_seq, 10u);
}

TEST(StoreAudit, CorruptSlotFailsClosedWithoutCrashing) {
    Opened o(2);
    Record r(base_time(), ATLS__VERDICT__VERDICT_ALLOWED);
    uint64_t seq = push_ok(o.s, 0, &r.rec);
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    uint64_t bad_seq = 0;
    ASSERT_EQ(store_ring_push_raw(o.s, &bad_seq, 0, junk, sizeof(junk)), 0);
    EXPECT_EQ(bad_seq, 2u);
    for (int i = 0; i < 2000 && store_is_healthy(o.s); i++) {
        usleep(1000);
    }
    EXPECT_FALSE(store_is_healthy(o.s));
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_health_error(o.s, err, sizeof(err)), -EBADMSG);
    EXPECT_NE(strstr(err, "worker 0 seq 2"), nullptr) << err;
    EXPECT_EQ(store_durable_seq(o.s, 0), 1u); // never acknowledged past the lost record
    r.rec.time_ns++;
    EXPECT_EQ(store_audit_push(o.s, &seq, 1, &r.rec), -EBADMSG); // every worker refuses now
    struct store_stats st;
    store_stats(o.s, &st);
    EXPECT_EQ(st.corrupt_slots, 1u);
    o.close();
    auto v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, 1u);
}

// Writes `n` records (one worker) and returns their keys in chain order.
std::vector<struct store_key> write_records(const std::string &dir, int n) {
    struct store_config cfg = config_for(dir);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    std::vector<struct store_key> keys;
    uint64_t t = base_time();
    for (int i = 0; i < n; i++) {
        Record r(t + (uint64_t)i * 1000, ATLS__VERDICT__VERDICT_ALLOWED);
        uint64_t seq = push_ok(s, 0, &r.rec);
        keys.push_back({r.rec.time_ns, 0, seq});
    }
    store_close(s);
    return keys;
}

TEST(StoreAudit, VerifyNamesAnAlteredRecord) {
    TempDir t;
    auto keys = write_records(t.path, 20);
    {
        RawDb raw(t.path);
        std::string v = raw.get(STORE_CF_RECORDS, key_bytes(keys[6]));
        ASSERT_FALSE(v.empty());
        Atls__AuditRecord *r =
            atls__audit_record__unpack(nullptr, v.size(), (const uint8_t *)v.data());
        ASSERT_NE(r, nullptr);
        char *original = r->db_user;
        r->db_user = (char *)"postgres"; // the tamperer grants themselves another role
        std::string nv(atls__audit_record__get_packed_size(r), '\0');
        atls__audit_record__pack(r, (uint8_t *)nv.data());
        r->db_user = original; // owned by the unpacked message: freed with it
        atls__audit_record__free_unpacked(r, nullptr);
        raw.put(STORE_CF_RECORDS, key_bytes(keys[6]), nv);
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_ALTERED) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 7u);
    ASSERT_TRUE(v.bad_key_known);
    EXPECT_EQ(v.bad_key.time_ns, keys[6].time_ns);
    EXPECT_EQ(v.bad_key.seq, 7u);
    EXPECT_NE(strstr(v.detail, "record 7 was altered"), nullptr) << v.detail;
    EXPECT_EQ(v.records_checked, 6u);
}

TEST(StoreAudit, VerifyNamesARemovedRecord) {
    TempDir t;
    auto keys = write_records(t.path, 20);
    {
        RawDb raw(t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[9]));
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_REMOVED) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 10u);
    EXPECT_TRUE(v.bad_key_known);
    EXPECT_EQ(v.bad_key.seq, 10u);
    EXPECT_NE(strstr(v.detail, "record 10 was removed"), nullptr) << v.detail;
}

TEST(StoreAudit, VerifyNamesAGapWhenRecordAndChainEntryAreRemoved) {
    TempDir t;
    auto keys = write_records(t.path, 20);
    {
        RawDb raw(t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[4]));
        raw.del(STORE_CF_CHAIN, chain_key(5));
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_REMOVED) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 5u);
    EXPECT_NE(strstr(v.detail, "records 5..5 were removed"), nullptr) << v.detail;
}

TEST(StoreAudit, VerifyDetectsRemovedTailAndInsertedRecord) {
    TempDir t;
    auto keys = write_records(t.path, 8);
    {
        RawDb raw(t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[7]));
        raw.del(STORE_CF_CHAIN, chain_key(8));
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_REMOVED) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 8u);

    TempDir t2;
    auto keys2 = write_records(t2.path, 8);
    {
        RawDb raw(t2.path);
        std::string v3 = raw.get(STORE_CF_RECORDS, key_bytes(keys2[2]));
        struct store_key forged = keys2[2];
        forged.seq = 1000;
        raw.put(STORE_CF_RECORDS, key_bytes(forged), v3);
    }
    auto w = verify(t2.path);
    EXPECT_EQ(w.status, STORE_VERIFY_INSERTED) << w.detail;
    EXPECT_EQ(w.bad_key.seq, 1000u);
}

TEST(StoreAudit, VerifyReportsCorruptValueWithoutCrashing) {
    TempDir t;
    auto keys = write_records(t.path, 5);
    {
        RawDb raw(t.path);
        raw.put(STORE_CF_RECORDS, key_bytes(keys[1]), std::string("\xff\xff\xff\x01", 4));
    }
    auto v = verify(t.path);
    EXPECT_NE(v.status, STORE_VERIFY_OK);
    EXPECT_EQ(v.bad_global_seq, 2u);
    // Queries hand the bytes through; decoding them is the caller's, and fails cleanly.
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open_readonly(&s, err, sizeof(err), t.path.c_str()), 0) << err;
    std::vector<Seen> seen;
    EXPECT_EQ(store_query_latest(s, 10, collect_fn, &seen), -EBADMSG);
    store_close(s);
}

TEST(StoreAudit, VerifyOnMissingDirectoryIsAnError) {
    struct store_verify_result r;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_audit_verify(&r, err, sizeof(err), "/nonexistent/audit"), -ENOENT);
    EXPECT_NE(err[0], '\0');
}

// Writes 9 records (one worker) in chain order: DENIED decisions (measurement 0xcd..) at global
// seq 2, 5, 8, a disconnect at 9, ALLOWED decisions (0xa1..) otherwise.
std::vector<struct store_key> write_mixed(const std::string &dir) {
    struct store_config cfg = config_for(dir);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    std::vector<struct store_key> keys;
    uint64_t t = base_time();
    for (int i = 0; i < 9; i++) {
        bool denied = i % 3 == 1;
        Record r(t + (uint64_t)i * 1000,
                 denied ? ATLS__VERDICT__VERDICT_DENIED : ATLS__VERDICT__VERDICT_ALLOWED,
                 denied ? 0xcd : 0xa1);
        if (i == 8) {
            r.rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT;
            r.rec.verdict = ATLS__VERDICT__VERDICT_UNSPECIFIED;
        }
        uint64_t seq = push_ok(s, 0, &r.rec);
        keys.push_back({r.rec.time_ns, 0, seq});
    }
    store_close(s);
    return keys;
}

// The denied-clients list and the counts per measurement read the indexes, not the records:
// verify checks that the indexes hold exactly the decision records' entries.
TEST(StoreAudit, VerifyNamesAMissingOrExtraIndexEntry) {
    TempDir t;
    auto keys = write_mixed(t.path);
    auto v = verify(t.path);
    ASSERT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, 9u);
    const std::string denied5 = key_bytes(keys[4]);  // global seq 5, DENIED, 0xcd..
    const std::string allowed4 = key_bytes(keys[3]); // global seq 4, ALLOWED, 0xa1..
    const std::string disc9 = key_bytes(keys[8]);    // global seq 9, a disconnect
    ProtobufCBinaryData cd = {STORE_MEASUREMENT_BYTES, nullptr};
    std::string cd_bytes(STORE_MEASUREMENT_BYTES, '\xcd');
    cd.data = (uint8_t *)&cd_bytes[0];
    const std::string vk_denied5 = Tamper::verdict_entry(ATLS__VERDICT__VERDICT_DENIED, denied5);
    const std::string mk_denied5 = Tamper::meas_entry(cd, ATLS__VERDICT__VERDICT_DENIED, denied5);
    struct Case {
        const char *what;
        enum store_cf cf;
        std::string key;
        bool remove;
        uint64_t bad_gseq;
        std::string bad_key;
        const char *detail;
    };
    struct store_key ghost = keys[4];
    ghost.seq = 77;
    const Case cases[] = {
        {"a denial hidden from the verdict index", STORE_CF_BY_VERDICT, vk_denied5, true, 5,
         denied5, "record 5 has no by_verdict index entry"},
        {"a denial hidden from the measurement index", STORE_CF_BY_MEASUREMENT, mk_denied5, true, 5,
         denied5, "record 5 has no by_measurement index entry"},
        {"an admitted session listed as denied", STORE_CF_BY_VERDICT,
         Tamper::verdict_entry(ATLS__VERDICT__VERDICT_DENIED, allowed4), false, 4, allowed4,
         "by_verdict index entry of record 4 "},
        {"a denial counted under another measurement", STORE_CF_BY_MEASUREMENT,
         Tamper::meas_entry({0, nullptr}, ATLS__VERDICT__VERDICT_DENIED, denied5), false, 5,
         denied5, "its measurement or verdict is not the record's"},
        {"a denial of a record that does not exist", STORE_CF_BY_VERDICT,
         Tamper::verdict_entry(ATLS__VERDICT__VERDICT_DENIED, key_bytes(ghost)), false, 0,
         key_bytes(ghost), "which does not exist"},
        {"a disconnect in the verdict index", STORE_CF_BY_VERDICT,
         Tamper::verdict_entry(ATLS__VERDICT__VERDICT_ALLOWED, disc9), false, 9, disc9,
         "the record is not a decision"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        {
            Tamper raw(t.path);
            if (c.remove) {
                raw.del(c.cf, c.key);
            } else {
                raw.put(c.cf, c.key, "");
            }
        }
        v = verify(t.path);
        EXPECT_EQ(v.status, STORE_VERIFY_INDEX) << v.detail;
        EXPECT_EQ(v.bad_global_seq, c.bad_gseq) << v.detail;
        EXPECT_TRUE(v.bad_key_known);
        EXPECT_EQ(key_bytes(v.bad_key), c.bad_key);
        EXPECT_NE(strstr(v.detail, c.detail), nullptr) << v.detail;
        {
            Tamper raw(t.path); // undo
            if (c.remove) {
                raw.put(c.cf, c.key, "");
            } else {
                raw.del(c.cf, c.key);
            }
        }
        v = verify(t.path);
        ASSERT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    }
}

// A head or anchor that does not decode is a finding of verify, not a failure to verify.
TEST(StoreAudit, VerifyReportsAHeadOrAnchorThatDoesNotDecodeAsCorrupt) {
    for (const char *name : {STORE_META_HEAD, STORE_META_ANCHOR}) {
        SCOPED_TRACE(name);
        TempDir t;
        write_records(t.path, 4);
        {
            Tamper raw(t.path);
            raw.put(STORE_CF_META, name, "xx");
        }
        struct store_verify_result r;
        char err[STORE_ERR_BYTES] = "";
        ASSERT_EQ(store_audit_verify(&r, err, sizeof(err), t.path.c_str()), 0) << err;
        EXPECT_EQ(r.status, STORE_VERIFY_CORRUPT) << r.detail;
        EXPECT_NE(strstr(r.detail, "does not decode"), nullptr) << r.detail;
        EXPECT_NE(strstr(r.detail, name), nullptr) << r.detail;
    }
}

struct store_verify_result verify_expect(const std::string &dir, uint64_t gseq,
                                         const std::string &digest) {
    struct store_chain_pos pos;
    pos.global_seq = gseq;
    EXPECT_EQ(digest.size(), sizeof(pos.sha256));
    memcpy(pos.sha256, digest.data(), sizeof(pos.sha256));
    struct store_verify_result r;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_audit_verify_expect_head(&r, err, sizeof(err), dir.c_str(), &pos), 0) << err;
    return r;
}

// The documented limit: the chain has no secret and its head is in the database, so removing
// the newest records and rewriting the head verifies OK. A head kept elsewhere catches it.
TEST(StoreAudit, TailTruncationWithARewrittenHeadNeedsTheExpectedHead) {
    TempDir t;
    write_mixed(t.path);
    auto v = verify(t.path);
    ASSERT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.head.global_seq, 9u);
    std::string head9, digest6;
    {
        Tamper raw(t.path);
        head9 = raw.digest(9);
        digest6 = raw.digest(6);
        EXPECT_EQ(std::string((const char *)v.head.sha256, 32), head9);
        raw.drop(9);
        raw.drop(8);
        raw.drop(7);
        raw.put_pos(STORE_META_HEAD, 6, digest6);
    }
    v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail; // undetectable without a pinned head
    EXPECT_EQ(v.records_checked, 6u);
    EXPECT_EQ(v.head.global_seq, 6u);
    EXPECT_EQ(std::string((const char *)v.head.sha256, 32), digest6);

    v = verify_expect(t.path, 9, head9);
    EXPECT_EQ(v.status, STORE_VERIFY_EXPECT_HEAD) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 9u);
    EXPECT_NE(strstr(v.detail, "expected head record 9 is past the chain's head 6"), nullptr)
        << v.detail;
    // The current head, or an older record with its digest, still holds.
    EXPECT_EQ(verify_expect(t.path, 6, digest6).status, STORE_VERIFY_OK);
    std::string wrong = digest6;
    wrong[0] ^= 1;
    v = verify_expect(t.path, 6, wrong);
    EXPECT_EQ(v.status, STORE_VERIFY_EXPECT_HEAD) << v.detail;
    EXPECT_NE(strstr(v.detail, "the chain was rewritten"), nullptr) << v.detail;
}

// Removing a prefix and forging the retention anchor from the next record's prev_sha256 looks
// like retention: OK, unless a head pinned inside the removed prefix is expected.
TEST(StoreAudit, PrefixRemovalWithAForgedAnchorNeedsTheExpectedHead) {
    TempDir t;
    write_mixed(t.path);
    std::string digest5, digest9;
    {
        Tamper raw(t.path);
        digest5 = raw.digest(5);
        digest9 = raw.digest(9);
        Atls__AuditRecord *r6 = raw.record(6);
        ASSERT_NE(r6, nullptr);
        std::string prev6((const char *)r6->prev_sha256.data, r6->prev_sha256.len);
        atls__audit_record__free_unpacked(r6, nullptr);
        EXPECT_EQ(prev6, digest5);
        for (uint64_t g = 1; g <= 5; g++) {
            raw.drop(g);
        }
        raw.put_pos(STORE_META_ANCHOR, 6, prev6);
    }
    auto v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail; // undetectable without a pinned head
    EXPECT_EQ(v.first_global_seq, 6u);
    EXPECT_EQ(v.records_checked, 4u);

    v = verify_expect(t.path, 5, digest5);
    EXPECT_EQ(v.status, STORE_VERIFY_EXPECT_HEAD) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 5u);
    EXPECT_NE(strstr(v.detail, "expected head record 5 is no longer in the chain (it starts at 6)"),
              nullptr)
        << v.detail;
    // A pin above the removed prefix still holds: the limit the documentation states.
    EXPECT_EQ(verify_expect(t.path, 9, digest9).status, STORE_VERIFY_OK);
}

void wait_retention(struct store *s, uint64_t runs_before) {
    for (int i = 0; i < 5000; i++) {
        struct store_stats st;
        store_stats(s, &st);
        if (st.retention_runs > runs_before) {
            return;
        }
        usleep(1000);
    }
    FAIL() << "retention did not run";
}

TEST(StoreAudit, RetentionByCountKeepsChainVerifiable) {
    Opened o(1, [](struct store_config *c) { c->retention_max_records = 10; });
    uint64_t t0 = base_time();
    uint64_t seq = 0;
    for (int i = 0; i < 30; i++) {
        Record r(t0 + (uint64_t)i, i % 2 ? ATLS__VERDICT__VERDICT_DENIED
                                         : ATLS__VERDICT__VERDICT_ALLOWED);
        seq = push_ok(o.s, 0, &r.rec);
    }
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    struct store_stats st;
    store_stats(o.s, &st);
    store_retention_request(o.s);
    wait_retention(o.s, st.retention_runs);
    store_stats(o.s, &st);
    EXPECT_EQ(st.retention_deleted, 20u);
    EXPECT_EQ(st.first_global_seq, 21u);
    std::vector<Seen> seen;
    ASSERT_EQ(store_query_latest(o.s, 100, collect_fn, &seen), 0);
    EXPECT_EQ(seen.size(), 10u);
    // Index entries went with their records.
    std::vector<Seen> denied;
    ASSERT_EQ(store_query_denied(o.s, 100, collect_fn, &denied), 0);
    EXPECT_EQ(denied.size(), 5u);
    struct store_measurement_count mc[4];
    size_t n = 0;
    ASSERT_EQ(store_query_measurements(o.s, mc, &n, 4), 0);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(mc[0].total, 10u);
    // More records chain onto the anchor.
    for (int i = 0; i < 3; i++) {
        Record r(t0 + 100 + (uint64_t)i, ATLS__VERDICT__VERDICT_ALLOWED);
        seq = push_ok(o.s, 0, &r.rec);
    }
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    o.close();
    auto v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.first_global_seq, 21u);
    EXPECT_EQ(v.records_checked, 13u);
}

TEST(StoreAudit, RetentionByAgeThenTamperIsStillDetected) {
    Opened o(1, [](struct store_config *c) { c->retention_days = 1; });
    uint64_t now = base_time();
    uint64_t day = 86400ULL * 1000000000ULL;
    std::vector<struct store_key> keys;
    uint64_t seq = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t t = i < 6 ? now - 3 * day + (uint64_t)i : now + (uint64_t)i;
        Record r(t, ATLS__VERDICT__VERDICT_ALLOWED);
        seq = push_ok(o.s, 0, &r.rec);
        keys.push_back({t, 0, seq});
    }
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    struct store_stats st;
    store_stats(o.s, &st);
    store_retention_request(o.s);
    wait_retention(o.s, st.retention_runs);
    store_stats(o.s, &st);
    EXPECT_EQ(st.retention_deleted, 6u);
    o.close();
    auto v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_EQ(v.records_checked, 4u);
    EXPECT_EQ(v.first_global_seq, 7u);
    {
        RawDb raw(o.t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[6])); // the oldest record retention kept
    }
    v = verify(o.t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_REMOVED) << v.detail;
    EXPECT_EQ(v.bad_global_seq, 7u);
}

// wait_first_kept waits until retention has deleted every record before global seq `first`.
void wait_first_kept(struct store *s, uint64_t first) {
    for (int i = 0; i < 10000; i++) {
        struct store_stats st;
        store_stats(s, &st);
        if (st.first_global_seq >= first) {
            return;
        }
        usleep(1000);
    }
    FAIL() << "retention did not reach record " << first;
}

// mixed_record makes the `i`-th record of the retention tests: six measurements, decisions
// without evidence, disconnects, all four verdicts.
std::unique_ptr<Record> mixed_record(uint64_t t, int i) {
    static const Atls__Verdict kVerdicts[] = {
        ATLS__VERDICT__VERDICT_ALLOWED, ATLS__VERDICT__VERDICT_DENIED,
        ATLS__VERDICT__VERDICT_WARNED, ATLS__VERDICT__VERDICT_ERROR};
    auto r = std::make_unique<Record>(t, kVerdicts[(i / 3) % 4], (uint8_t)(0x20 + (i * 7) % 6));
    if (i % 11 == 0) {
        r->rec.measurement.len = 0;
    }
    if (i % 13 == 0) {
        r->rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT;
        r->rec.verdict = ATLS__VERDICT__VERDICT_UNSPECIFIED;
    }
    return r;
}

// Retention by count over more than one retention batch (STORE_RETENTION_DELETE_BATCH_MAX):
// the counts fall by exactly what was deleted, with the default table and with one that has
// overflowed.
void counts_fall_with_retention_by_count(uint32_t counts_max) {
    Opened o(
        1,
        [](struct store_config *c) {
            c->retention_max_records = 50;
            c->sync = STORE_SYNC_BATCH;
        },
        counts_max);
    constexpr int kRecords = 1300;
    uint64_t t0 = base_time();
    std::vector<std::unique_ptr<Record>> recs;
    CountModel model;
    uint64_t seq = 0;
    // Retention runs only when asked: config_for sets an interval of an hour.
    for (int i = 0; i < kRecords; i++) {
        recs.push_back(mixed_record(t0 + (uint64_t)i, i));
        seq = push_ok(o.s, 0, &recs.back()->rec);
        model.add(recs.back()->rec, +1);
    }
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    EXPECT_TRUE(counts_match(o.s, model, 100));
    store_retention_request(o.s);
    wait_first_kept(o.s, kRecords - 50 + 1);
    for (int i = 0; i < kRecords - 50; i++) {
        model.add(recs[(size_t)i]->rec, -1); // one worker: chain order is push order
    }
    struct store_stats st;
    store_stats(o.s, &st);
    EXPECT_EQ(st.retention_deleted, (uint64_t)kRecords - 50);
    for (size_t cap : {0, 2, 3, 6, 7, 8, 100}) {
        EXPECT_TRUE(counts_match(o.s, model, cap));
    }
    uint64_t kept = 0;
    for (int i = kRecords - 50; i < kRecords; i++) {
        kept += recs[(size_t)i]->rec.kind == ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
    }
    EXPECT_EQ(model.total(), kept);
}

TEST(StoreAudit, MeasurementCountsFallWithRetentionByCount) {
    counts_fall_with_retention_by_count(0);
}

TEST(StoreAudit, MeasurementCountsFallWithRetentionByCountPastTheTableLimit) {
    counts_fall_with_retention_by_count(3);
}

TEST(StoreAudit, MeasurementCountsFallWithRetentionByAge) {
    Opened o(1, [](struct store_config *c) { c->retention_days = 1; });
    uint64_t now = base_time();
    uint64_t day = 86400ULL * 1000000000ULL;
    std::vector<std::unique_ptr<Record>> recs;
    CountModel model;
    CountModel young;
    uint64_t seq = 0;
    for (int i = 0; i < 120; i++) {
        bool old = i < 70;
        recs.push_back(mixed_record(old ? now - 3 * day + (uint64_t)i : now + (uint64_t)i, i));
        seq = push_ok(o.s, 0, &recs.back()->rec);
        model.add(recs.back()->rec, +1);
        if (!old) {
            young.add(recs.back()->rec, +1);
        }
    }
    ASSERT_TRUE(wait_durable(o.s, 0, seq));
    EXPECT_TRUE(counts_match(o.s, model, 100));
    struct store_stats st;
    store_stats(o.s, &st);
    store_retention_request(o.s);
    wait_retention(o.s, st.retention_runs);
    store_stats(o.s, &st);
    EXPECT_EQ(st.retention_deleted, 70u);
    for (size_t cap : {0, 3, 6, 7, 100}) {
        EXPECT_TRUE(counts_match(o.s, young, cap));
    }
}

// The counts follow the index even where it disagrees with the records: a record whose
// measurement index entry was removed on disk is not counted at open, and retention deleting
// that record must not lower the counts of its measurement.
TEST(StoreAudit, MeasurementCountsFollowTheIndexThroughRetention) {
    TempDir t;
    auto keys = write_records(t.path, 20); // all ALLOWED, measurement 0xa1..
    {
        RawDb raw(t.path);
        std::string k(STORE_MEASUREMENT_BYTES, '\xa1');
        uint8_t v[4];
        store_be32_put(v, ATLS__VERDICT__VERDICT_ALLOWED);
        k += std::string((const char *)v, sizeof(v)) + key_bytes(keys[3]);
        raw.del(STORE_CF_BY_MEASUREMENT, k);
    }
    struct store_config cfg = config_for(t.path);
    cfg.retention_max_records = 10;
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    MeasAnswer a = query_measurements(s, 4);
    EXPECT_TRUE(same_answer(a, query_measurements(s, 4, true)));
    ASSERT_EQ(a.out.size(), 1u);
    EXPECT_EQ(a.out[0].total, 19u); // the entry is gone from the index
    struct store_stats st;
    store_stats(s, &st);
    store_retention_request(s);
    wait_retention(s, st.retention_runs);
    store_stats(s, &st);
    EXPECT_EQ(st.retention_deleted, 10u);
    a = query_measurements(s, 4);
    EXPECT_TRUE(same_answer(a, query_measurements(s, 4, true)));
    ASSERT_EQ(a.out.size(), 1u);
    EXPECT_EQ(a.out[0].total, 10u);
    store_close(s);
}

// Kill -9 mid-stream with sync=always: every acknowledged record survives.
TEST(StoreAudit, AcknowledgedRecordsSurviveKillNine) {
    TempDir t;
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        struct store_config cfg = config_for(t.path);
        cfg.sync = STORE_SYNC_ALWAYS;
        cfg.batch_max = 4;
        struct store *s = nullptr;
        char err[STORE_ERR_BYTES];
        if (store_open(&s, err, sizeof(err), &cfg, 1) != 0) {
            _exit(3);
        }
        uint64_t next_report = 1;
        std::vector<uint64_t> times(1);
        for (uint64_t i = 1;; i++) {
            Record r(core_base_wall_ns(), ATLS__VERDICT__VERDICT_ALLOWED);
            uint64_t seq = 0;
            int rc;
            while ((rc = store_audit_push(s, &seq, 0, &r.rec)) == -EAGAIN) {
                usleep(50);
            }
            if (rc != 0 || seq != i) {
                _exit(4);
            }
            times.push_back(r.rec.time_ns);
            // Report every record as soon as it is acknowledged (durable).
            uint64_t durable = store_durable_seq(s, 0);
            for (; next_report <= durable; next_report++) {
                uint64_t msg[2] = {next_report, times[next_report]};
                if (write(fds[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
                    _exit(5);
                }
            }
        }
    }
    close(fds[1]);
    std::vector<std::pair<uint64_t, uint64_t>> acked;
    uint64_t msg[2];
    while (acked.size() < 300) {
        ssize_t n = read(fds[0], msg, sizeof(msg));
        ASSERT_EQ(n, (ssize_t)sizeof(msg)) << "child died early";
        acked.push_back({msg[0], msg[1]});
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status));
    while (read(fds[0], msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
        acked.push_back({msg[0], msg[1]}); // acknowledged before the kill, still in the pipe
    }
    close(fds[0]);

    auto v = verify(t.path); // read-only open replays the WAL of the killed writer
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
    EXPECT_GE(v.records_checked, acked.size());

    struct store_config cfg = config_for(t.path);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    std::vector<uint8_t> buf(STORE_VALUE_BYTES_MAX);
    for (const auto &a : acked) {
        struct store_key k = {a.second, 0, a.first};
        size_t len = 0;
        ASSERT_EQ(store_query_get(s, buf.data(), &len, buf.size(), &k), 0)
            << "acknowledged seq " << a.first << " lost";
    }
    // The chain continues after recovery.
    Record r(core_base_wall_ns(), ATLS__VERDICT__VERDICT_DENIED);
    uint64_t seq = push_ok(s, 0, &r.rec);
    ASSERT_TRUE(wait_durable(s, 0, seq));
    store_close(s);
    v = verify(t.path);
    EXPECT_EQ(v.status, STORE_VERIFY_OK) << v.detail;
}

// A full disk (a 4 MiB tmpfs in a private mount namespace) turns the store unhealthy and pushes
// fail: fail closed. Runs in a child because it needs its own mount namespace.
TEST(StoreAudit, DiskFullTurnsStoreUnhealthy) {
    TempDir t;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE,
                                               nullptr) != 0 ||
            mount("tmpfs", t.path.c_str(), "tmpfs", 0, "size=4m") != 0) {
            _exit(100);
        }
        struct store_config cfg = config_for(t.path);
        struct store *s = nullptr;
        char err[STORE_ERR_BYTES] = "";
        if (store_open(&s, err, sizeof(err), &cfg, 1) != 0) {
            fprintf(stderr, "open: %s\n", err);
            _exit(101);
        }
        uint64_t last_ok = 0;
        int rc = 0;
        for (int i = 0; i < 100000 && store_is_healthy(s); i++) {
            Record r(core_base_wall_ns(), ATLS__VERDICT__VERDICT_ALLOWED);
            uint64_t seq = 0;
            rc = store_audit_push(s, &seq, 0, &r.rec);
            if (rc == -EAGAIN) {
                usleep(100);
                continue;
            }
            if (rc != 0) {
                break;
            }
            last_ok = seq;
        }
        for (int i = 0; i < 5000 && store_is_healthy(s); i++) {
            usleep(1000);
        }
        int herr = store_health_error(s, err, sizeof(err));
        uint64_t durable = store_durable_seq(s, 0);
        Record r(core_base_wall_ns(), ATLS__VERDICT__VERDICT_ALLOWED);
        uint64_t seq = 0;
        int after = store_audit_push(s, &seq, 0, &r.rec);
        fprintf(stderr, "health=%d (%s) durable=%llu pushed=%llu after=%d\n", herr, err,
                (unsigned long long)durable, (unsigned long long)last_ok, after);
        bool ok = herr == -ENOSPC && strstr(err, "No space left") != nullptr &&
                  durable < last_ok && after == -ENOSPC;
        store_close(s);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 100) {
        GTEST_SKIP() << "no permission to mount a small tmpfs in a private mount namespace";
    }
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

} // namespace
