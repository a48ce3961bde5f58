// store_query_test.cc: tests store/store_query.c — newest-first pagination with stable cursors,
// the since filter, denials, counts per measurement, get by key, concurrent reads and writes.
#include <atomic>
#include <map>
#include <thread>

#include "store_test_util.h"

using namespace store_test;

namespace {

constexpr uint64_t kBase = 1700000000000000000ULL;

struct Filled {
    TempDir t;
    struct store *s = nullptr;
    Filled() {
        struct store_config cfg = config_for(t.path);
        cfg.sync = STORE_SYNC_BATCH;
        char err[STORE_ERR_BYTES] = "";
        EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 2), 0) << err;
    }
    ~Filled() { store_close(s); }
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

TEST(StoreQuery, ReadsRunConcurrentlyWithWrites) {
    Filled f;
    std::atomic<bool> done{false};
    std::thread writer([&] {
        f.add(0, 400);
        done = true;
    });
    size_t last = 0;
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
    }
    writer.join();
    std::vector<Seen> all;
    ASSERT_EQ(store_query_latest(f.s, 1000, collect_fn, &all), 0);
    EXPECT_EQ(all.size(), 400u);
}

} // namespace
