// store_query_test.cc: tests store/store_query.c — newest-first pagination with stable cursors,
// the since filter, denials, counts per measurement (from memory, checked against the index),
// get by key, concurrent reads and writes.
#include <sys/resource.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "store_test_util.h"

using namespace store_test;

namespace {

constexpr uint64_t kBase = 1700000000000000000ULL;

struct Filled {
    TempDir t;
    struct store *s = nullptr;
    // `counts_max`: room for distinct measurements in memory (0: store_open's default).
    explicit Filled(uint32_t counts_max = 0) {
        open(counts_max);
    }
    ~Filled() {
        store_close(s);
    }
    void open(uint32_t counts_max) {
        struct store_config cfg = config_for(t.path);
        cfg.sync = STORE_SYNC_BATCH;
        char err[STORE_ERR_BYTES] = "";
        int rc = counts_max == 0
                     ? store_open(&s, err, sizeof(err), &cfg, 2)
                     : store_open_with_counts(&s, err, sizeof(err), &cfg, 2, counts_max);
        EXPECT_EQ(rc, 0) << err;
    }
    void reopen(uint32_t counts_max) {
        store_close(s);
        s = nullptr;
        open(counts_max);
    }
    // add pushes `n` decisions at kBase + i*1000 (i from `from`), verdicts and measurements
    // cycling, alternating workers, and waits until they are durable.
    void add(int from, int n) {
        uint64_t last[2] = {0, 0};
        for (int i = from; i < from + n; i++) {
            Atls__Verdict v = i % 5 == 0 ? ATLS__VERDICT__VERDICT_DENIED
                              : i % 7 == 0 ? ATLS__VERDICT__VERDICT_WARNED
                                           : ATLS__VERDICT__VERDICT_ALLOWED;
            Record r(kBase + (uint64_t)i * 1000, v, (uint8_t)(0x10 + i % 3));
            uint32_t w = (uint32_t)i % 2;
            last[w] = push_ok(s, w, &r.rec);
        }
        EXPECT_TRUE(wait_durable(s, 0, last[0]));
        EXPECT_TRUE(wait_durable(s, 1, last[1]));
    }
};

TEST(StoreQuery, PaginatesNewestFirstWithStableCursors) {
    Filled f;
    f.add(0, 250);
    std::vector<Seen> all;
    struct store_list_query q = {};
    q.limit = 100;
    int pages = 0;
    for (;;) {
        std::vector<Seen> page;
        char next[STORE_CURSOR_BYTES];
        ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
        pages++;
        all.insert(all.end(), page.begin(), page.end());
        if (pages == 1) {
            f.add(1000, 20); // newer records arrive between pages: later pages are unaffected
        }
        if (next[0] == '\0') {
            EXPECT_LT(page.size(), 100u + 1);
            break;
        }
        EXPECT_EQ(page.size(), 100u);
        snprintf(q.cursor, sizeof(q.cursor), "%s", next);
    }
    EXPECT_EQ(pages, 3);
    ASSERT_EQ(all.size(), 250u);
    for (size_t i = 0; i < all.size(); i++) {
        EXPECT_EQ(all[i].key.time_ns, kBase + (uint64_t)(249 - i) * 1000) << i;
    }
}

TEST(StoreQuery, ExactMultipleOfLimitEndsWithEmptyCursor) {
    Filled f;
    f.add(0, 20);
    struct store_list_query q = {};
    q.limit = 20;
    std::vector<Seen> page;
    char next[STORE_CURSOR_BYTES];
    ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
    EXPECT_EQ(page.size(), 20u);
    EXPECT_STREQ(next, "");
}

TEST(StoreQuery, SinceFiltersOlderRecords) {
    Filled f;
    f.add(0, 100);
    struct store_list_query q = {};
    q.limit = 1000;
    q.since_ns = kBase + 60 * 1000;
    std::vector<Seen> page;
    char next[STORE_CURSOR_BYTES];
    ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
    EXPECT_EQ(page.size(), 40u);
    EXPECT_EQ(page.back().key.time_ns, q.since_ns);
    EXPECT_STREQ(next, "");
    // since + pagination: the cursor stops at the since bound too.
    q.limit = 30;
    page.clear();
    ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
    ASSERT_STRNE(next, "");
    snprintf(q.cursor, sizeof(q.cursor), "%s", next);
    page.clear();
    ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
    EXPECT_EQ(page.size(), 10u);
    EXPECT_STREQ(next, "");
}

TEST(StoreQuery, LatestAndDenied) {
    Filled f;
    f.add(0, 100);
    std::vector<Seen> latest;
    ASSERT_EQ(store_query_latest(f.s, 5, collect_fn, &latest), 0);
    ASSERT_EQ(latest.size(), 5u);
    EXPECT_EQ(latest[0].key.time_ns, kBase + 99 * 1000);
    std::vector<Seen> denied;
    ASSERT_EQ(store_query_denied(f.s, 1000, collect_fn, &denied), 0);
    EXPECT_EQ(denied.size(), 20u); // i % 5 == 0
    for (size_t i = 0; i < denied.size(); i++) {
        EXPECT_EQ(denied[i].verdict, ATLS__VERDICT__VERDICT_DENIED);
        EXPECT_EQ(denied[i].key.time_ns, kBase + (uint64_t)(95 - 5 * i) * 1000);
    }
    denied.clear();
    ASSERT_EQ(store_query_denied(f.s, 3, collect_fn, &denied), 0);
    EXPECT_EQ(denied.size(), 3u);
}

TEST(StoreQuery, MeasurementCountsAddUpToTotals) {
    Filled f;
    f.add(0, 105);
    // A disconnect is not a decision and is not counted.
    Record d(kBase + 999999, ATLS__VERDICT__VERDICT_UNSPECIFIED);
    d.rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT;
    uint64_t seq = push_ok(f.s, 0, &d.rec);
    ASSERT_TRUE(wait_durable(f.s, 0, seq));
    struct store_measurement_count mc[8];
    size_t n = 0;
    ASSERT_EQ(store_query_measurements(f.s, mc, &n, 8), 0);
    ASSERT_EQ(n, 3u);
    uint64_t total = 0;
    uint64_t by[STORE_VERDICT_SLOTS] = {};
    for (size_t i = 0; i < n; i++) {
        EXPECT_EQ(mc[i].measurement[0], 0x10 + i); // ordered by measurement bytes
        uint64_t sum = 0;
        for (uint32_t v = 0; v < STORE_VERDICT_SLOTS; v++) {
            sum += mc[i].by_verdict[v];
            by[v] += mc[i].by_verdict[v];
        }
        EXPECT_EQ(sum, mc[i].total);
        EXPECT_EQ(mc[i].total, 35u);
        total += mc[i].total;
    }
    EXPECT_EQ(total, 105u);
    EXPECT_EQ(by[ATLS__VERDICT__VERDICT_DENIED], 21u);
    EXPECT_EQ(by[ATLS__VERDICT__VERDICT_WARNED], 12u); // i%7==0 && i%5!=0: 15 - 3
    EXPECT_EQ(by[ATLS__VERDICT__VERDICT_ALLOWED], 72u);
    EXPECT_EQ(store_query_measurements(f.s, mc, &n, 2), -ENOSPC);
    EXPECT_EQ(n, 2u);
}

// Mixed pushes decisions over `distinct` random measurements (plus decisions without evidence
// and disconnects), verdicts cycling through all four, alternating workers, into the model.
struct Mixed {
    Filled &f;
    CountModel model;
    std::mt19937 rng;
    std::vector<Meas> meas;
    uint64_t next_time = kBase;
    uint64_t last[2] = {0, 0};
    Mixed(Filled &filled, size_t distinct, uint32_t seed = 12345) : f(filled), rng(seed) {
        for (size_t i = 0; i < distinct; i++) {
            Meas m;
            for (auto &b : m) {
                b = (uint8_t)rng();
            }
            meas.push_back(m);
        }
    }
    void push(uint32_t i, const Meas *m, Atls__AuditKind kind, Atls__Verdict v) {
        Record r(next_time++, v);
        r.rec.kind = kind;
        if (m == nullptr) {
            r.rec.measurement.len = 0;
        } else {
            memcpy(r.meas, m->data(), sizeof(r.meas));
        }
        uint32_t w = i % 2;
        last[w] = push_ok(f.s, w, &r.rec);
        model.add(r.rec, +1);
    }
    void add(uint32_t n) {
        static const Atls__Verdict kVerdicts[] = {
            ATLS__VERDICT__VERDICT_ALLOWED, ATLS__VERDICT__VERDICT_DENIED,
            ATLS__VERDICT__VERDICT_WARNED, ATLS__VERDICT__VERDICT_ERROR};
        for (uint32_t i = 0; i < n; i++) {
            Atls__Verdict v = kVerdicts[rng() % 4];
            uint32_t pick = (uint32_t)(rng() % (meas.size() + 2));
            if (pick == meas.size()) {
                push(i, nullptr, ATLS__AUDIT_KIND__AUDIT_KIND_DECISION, v);
            } else if (pick == meas.size() + 1) {
                push(i, nullptr, ATLS__AUDIT_KIND__AUDIT_KIND_DISCONNECT,
                     ATLS__VERDICT__VERDICT_UNSPECIFIED);
            } else {
                push(i, &meas[pick], ATLS__AUDIT_KIND__AUDIT_KIND_DECISION, v);
            }
        }
        EXPECT_TRUE(wait_durable(f.s, 0, last[0]));
        EXPECT_TRUE(wait_durable(f.s, 1, last[1]));
    }
};

TEST(StoreQuery, MeasurementCountsComeFromMemoryAndMatchTheIndex) {
    Filled f;
    Mixed mx(f, 40);
    mx.add(700);
    ASSERT_EQ(mx.model.m.size(), 41u); // every measurement drawn, and no evidence
    uint64_t scans = store_query_measurement_scans(f.s);
    for (size_t cap : {0, 1, 2, 40, 41, 42, 4096}) {
        EXPECT_TRUE(same_answer(query_measurements(f.s, cap), expected_measurements(mx.model, cap)))
            << "cap " << cap;
    }
    EXPECT_EQ(store_query_measurement_scans(f.s), scans); // not one read of the index
    for (size_t cap : {0, 1, 40, 41, 42, 4096}) {
        EXPECT_TRUE(counts_match(f.s, mx.model, cap));
    }
    // More writes keep both in step.
    mx.add(300);
    EXPECT_TRUE(counts_match(f.s, mx.model, 4096));
}

TEST(StoreQuery, MeasurementCountsSurviveReopen) {
    Filled f;
    Mixed mx(f, 12);
    mx.add(300);
    EXPECT_TRUE(counts_match(f.s, mx.model, 100));
    f.reopen(0);
    uint64_t scans = store_query_measurement_scans(f.s);
    EXPECT_TRUE(same_answer(query_measurements(f.s, 100), expected_measurements(mx.model, 100)));
    EXPECT_EQ(store_query_measurement_scans(f.s), scans);
    mx.add(100); // the chain and the counts continue
    EXPECT_TRUE(counts_match(f.s, mx.model, 100));
    EXPECT_TRUE(counts_match(f.s, mx.model, 5));
    // A read-only open (atlsctl) scans the index and agrees.
    f.reopen(0);
    store_close(f.s);
    f.s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open_readonly(&f.s, err, sizeof(err), f.t.path.c_str()), 0) << err;
    EXPECT_TRUE(same_answer(query_measurements(f.s, 100), expected_measurements(mx.model, 100)));
    EXPECT_TRUE(same_answer(query_measurements(f.s, 5), expected_measurements(mx.model, 5)));
}

// With room for only 4 measurements in memory the table overflows; every answer, for every
// cap, must still be exact, read from memory when the page fits in the table.
TEST(StoreQuery, MeasurementCountsPastTheTableLimitStayExact) {
    Filled f(4);
    Mixed mx(f, 30);
    // Checked as the table fills, overflows and keeps dropping its greatest measurement.
    for (int step = 0; step < 16; step++) {
        mx.add(25);
        for (size_t cap : {0, 3, 4, 5, 31, 32}) {
            EXPECT_TRUE(counts_match(f.s, mx.model, cap)) << "after " << 25 * (step + 1);
        }
    }
    ASSERT_EQ(mx.model.m.size(), 31u);
    for (size_t cap = 0; cap <= 33; cap++) {
        uint64_t scans = store_query_measurement_scans(f.s);
        EXPECT_TRUE(same_answer(query_measurements(f.s, cap), expected_measurements(mx.model, cap)))
            << "cap " << cap;
        // The 4 smallest are in memory: a page of up to 3 needs nothing else; from 4 on the
        // index is read from the table's limit.
        EXPECT_EQ(store_query_measurement_scans(f.s) - scans, cap < 4 ? 0u : 1u) << "cap " << cap;
    }
    mx.add(200); // writes below and above the limit
    for (size_t cap : {0, 3, 4, 5, 31, 32, 100}) {
        EXPECT_TRUE(counts_match(f.s, mx.model, cap));
    }
    // A reopen rebuilds the small table (its scan stops at the limit), or a full one.
    f.reopen(4);
    for (size_t cap : {0, 3, 4, 5, 31, 32, 100}) {
        EXPECT_TRUE(counts_match(f.s, mx.model, cap));
    }
    f.reopen(0);
    uint64_t scans = store_query_measurement_scans(f.s);
    EXPECT_TRUE(same_answer(query_measurements(f.s, 100), expected_measurements(mx.model, 100)));
    EXPECT_EQ(store_query_measurement_scans(f.s), scans);
}

// store_query_measurements_kept answers from the in-memory table alone: with 4 of 31
// measurements kept, the 4 smallest (or fewer, for a smaller cap) and -ENOSPC, never an index
// scan; on a store whose table holds them all it equals store_query_measurements.
TEST(StoreQuery, MeasurementCountsKeptNeverScanTheIndex) {
    Filled f(4);
    Mixed mx(f, 30);
    mx.add(400);
    ASSERT_EQ(mx.model.m.size(), 31u);
    for (size_t cap : {0, 3, 4, 5, 31, 32}) {
        uint64_t scans = store_query_measurement_scans(f.s);
        MeasAnswer got;
        got.out.resize(cap + 1);
        size_t n = 12345;
        got.rc = store_query_measurements_kept(f.s, got.out.data(), &n, cap);
        got.out.resize(n);
        MeasAnswer want = expected_measurements(mx.model, cap < 4 ? cap : 4);
        want.rc = -ENOSPC;
        EXPECT_TRUE(same_answer(got, want)) << "cap " << cap;
        EXPECT_EQ(store_query_measurement_scans(f.s), scans) << "cap " << cap;
    }
    f.reopen(0); // a table that holds every measurement
    for (size_t cap : {0, 3, 31, 32}) {
        MeasAnswer got;
        got.out.resize(cap + 1);
        size_t n = 12345;
        got.rc = store_query_measurements_kept(f.s, got.out.data(), &n, cap);
        got.out.resize(n);
        EXPECT_TRUE(same_answer(got, expected_measurements(mx.model, cap))) << "cap " << cap;
    }
}

// A write batch that fails is not counted: RLIMIT_FSIZE makes the WAL write fail (EFBIG) once
// it grows past 256 KiB, in a child process so the limit stays there. Nor does a retention
// batch that fails lower the counts.
TEST(StoreQuery, MeasurementCountsSkipAFailedWriteBatch) {
    TempDir t;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); // the write fails with EFBIG instead of killing the process
        struct rlimit lim = {256 * 1024, 256 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
            _exit(100);
        }
        struct store_config cfg = config_for(t.path);
        cfg.batch_max = 8;
        cfg.retention_max_records = 50; // applied only when this test calls it
        struct store *s = nullptr;
        char err[STORE_ERR_BYTES] = "";
        if (store_open(&s, err, sizeof(err), &cfg, 1) != 0) {
            fprintf(stderr, "open: %s\n", err);
            _exit(101);
        }
        uint64_t pushed = 0;
        for (int i = 0; i < 2000 && store_is_healthy(s); i++) {
            Record r(kBase + (uint64_t)i, ATLS__VERDICT__VERDICT_ALLOWED, (uint8_t)(i % 3));
            uint64_t seq = 0;
            int rc = store_audit_push(s, &seq, 0, &r.rec);
            if (rc == -EAGAIN) {
                usleep(100);
                continue;
            }
            if (rc != 0) {
                break;
            }
            pushed = seq;
        }
        for (int i = 0; i < 5000 && store_is_healthy(s); i++) {
            usleep(1000);
        }
        int herr = store_health_error(s, err, sizeof(err));
        struct store_stats st;
        store_stats(s, &st);
        MeasAnswer mem = query_measurements(s, 16);
        MeasAnswer scan = query_measurements(s, 16, true);
        uint64_t mem_total = 0;
        for (const auto &e : mem.out) {
            mem_total += e.total;
        }
        uint64_t durable = store_durable_seq(s, 0);
        fprintf(stderr, "health=%d (%s) pushed=%llu durable=%llu written=%llu counted=%llu\n", herr,
                err, (unsigned long long)pushed, (unsigned long long)durable,
                (unsigned long long)st.records_written, (unsigned long long)mem_total);
        bool ok = herr != 0 && durable < pushed && st.records_written == durable &&
                  mem_total == durable && same_answer(mem, scan);
        // Retention would delete all but 50; its write fails too (RocksDB refuses writes after
        // a failed WAL write). The store thread is idle (unhealthy, paused, no retention due or
        // requested), so this thread may run retention in its place.
        store_set_paused(s, true);
        int rrc = store_audit_retention(s);
        MeasAnswer after = query_measurements(s, 16);
        fprintf(stderr, "retention=%d\n", rrc);
        ok = ok && rrc < 0 && same_answer(after, mem) &&
             same_answer(after, query_measurements(s, 16, true));
        store_close(s);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 100) << "setrlimit failed";
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(StoreQuery, GetByKeyAndBadInputs) {
    Filled f;
    f.add(0, 3);
    std::vector<Seen> latest;
    ASSERT_EQ(store_query_latest(f.s, 1, collect_fn, &latest), 0);
    ASSERT_EQ(latest.size(), 1u);
    std::vector<uint8_t> buf(STORE_VALUE_BYTES_MAX);
    size_t len = 0;
    ASSERT_EQ(store_query_get(f.s, buf.data(), &len, buf.size(), &latest[0].key), 0);
    Atls__AuditRecord *r = atls__audit_record__unpack(nullptr, len, buf.data());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->time_ns, latest[0].key.time_ns);
    EXPECT_EQ(r->report.len, 1184u);
    EXPECT_EQ(r->prev_sha256.len, 32u);
    atls__audit_record__free_unpacked(r, nullptr);
    EXPECT_EQ(store_query_get(f.s, buf.data(), &len, 10, &latest[0].key), -EMSGSIZE);
    struct store_key missing = latest[0].key;
    missing.seq += 100;
    EXPECT_EQ(store_query_get(f.s, buf.data(), &len, buf.size(), &missing), -ENOENT);

    struct store_list_query q = {};
    char next[STORE_CURSOR_BYTES];
    std::vector<Seen> page;
    q.limit = 0;
    EXPECT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), -EINVAL);
    q.limit = STORE_QUERY_LIMIT_MAX + 1;
    EXPECT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), -EINVAL);
    q.limit = 10;
    snprintf(q.cursor, sizeof(q.cursor), "%s", "not-a-cursor");
    EXPECT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), -EINVAL);
    EXPECT_EQ(store_query_denied(f.s, 0, collect_fn, &page), -EINVAL);
    EXPECT_TRUE(page.empty());
}

int stop_after_two(void *arg, const struct store_key *, const uint8_t *, size_t) {
    int *n = static_cast<int *>(arg);
    return ++*n == 2 ? 1 : 0;
}

TEST(StoreQuery, CallbackCanStopEarly) {
    Filled f;
    f.add(0, 10);
    int n = 0;
    EXPECT_EQ(store_query_latest(f.s, 10, stop_after_two, &n), 0);
    EXPECT_EQ(n, 2);
}

// Run under TSan (ctest label tsan): the store thread updates the measurement counts while this
// thread reads them (and, with a 2-entry table, also scans the index past it).
void reads_run_concurrently_with_writes(uint32_t counts_max) {
    Filled f(counts_max);
    std::atomic<bool> done{false};
    std::thread writer([&] {
        f.add(0, 400);
        done = true;
    });
    size_t last = 0;
    uint64_t last_total = 0;
    while (!done) {
        std::vector<Seen> page;
        char next[STORE_CURSOR_BYTES];
        struct store_list_query q = {};
        q.limit = STORE_QUERY_LIMIT_MAX;
        ASSERT_EQ(store_query_list(f.s, next, &q, collect_fn, &page), 0);
        EXPECT_GE(page.size(), last); // records only appear
        last = page.size();
        struct store_measurement_count mc[4];
        size_t n = 0;
        ASSERT_EQ(store_query_measurements(f.s, mc, &n, 4), 0);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            total += mc[i].total;
        }
        EXPECT_GE(total, last_total); // counts only grow
        last_total = total;
    }
    writer.join();
    std::vector<Seen> all;
    ASSERT_EQ(store_query_latest(f.s, 1000, collect_fn, &all), 0);
    EXPECT_EQ(all.size(), 400u);
    MeasAnswer mem = query_measurements(f.s, 4);
    EXPECT_TRUE(same_answer(mem, query_measurements(f.s, 4, true)));
    ASSERT_EQ(mem.out.size(), 3u);
    EXPECT_EQ(mem.out[0].total + mem.out[1].total + mem.out[2].total, 400u);
}

TEST(StoreQuery, ReadsRunConcurrentlyWithWrites) {
    reads_run_concurrently_with_writes(0);
}

TEST(StoreQuery, ReadsRunConcurrentlyWithWritesPastTheTableLimit) {
    reads_run_concurrently_with_writes(2);
}

} // namespace
