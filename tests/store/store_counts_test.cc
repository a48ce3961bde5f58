// store_counts_test.cc: tests store/store_counts.c — the in-memory decision counts on their own:
// counting only committed batches, one count per index key, keeping the smallest measurements
// when full, and falling back to the index when the table cannot be exact. The same table
// against real RocksDB is in store_query_test.cc and store_audit_test.cc.
#include <memory>

#include "store_test_util.h"

using namespace store_test;

namespace {

struct CountsDeleter {
    void operator()(struct store_counts *c) const {
        store_counts_free(c);
    }
};
using Counts = std::unique_ptr<struct store_counts, CountsDeleter>;

Counts make(uint32_t entries_max, uint32_t staged_max = 64) {
    return Counts(store_counts_new(entries_max, staged_max));
}

// mk builds a by_measurement key: measurement `m` repeated, `verdict`, record key `seq`.
std::vector<uint8_t> mk(uint8_t m, uint32_t verdict, uint64_t seq) {
    std::vector<uint8_t> k(STORE_MEAS_KEY_BYTES, 0);
    memset(k.data(), m, STORE_MEASUREMENT_BYTES);
    store_be32_put(k.data() + STORE_MEASUREMENT_BYTES, verdict);
    struct store_key key = {1000 + seq, 0, seq};
    store_key_encode(k.data() + STORE_MEASUREMENT_BYTES + 4, &key);
    return k;
}

void stage(struct store_counts *c, uint8_t m, uint32_t verdict, uint64_t seq, int delta) {
    store_counts_stage(c, mk(m, verdict, seq).data(), delta);
}

struct Copy {
    int rc = 0;
    std::vector<struct store_measurement_count> out;
    bool partial = false;
    uint8_t from[STORE_MEASUREMENT_BYTES] = {};
    // firsts is the first byte of each measurement copied.
    std::vector<int> firsts() const {
        std::vector<int> f;
        for (const auto &e : out) {
            f.push_back(e.measurement[0]);
        }
        return f;
    }
};

Copy copy(struct store_counts *c, size_t cap) {
    Copy r;
    r.out.resize(cap + 1);
    size_t n = 99;
    r.rc = store_counts_copy(c, r.out.data(), &n, cap, r.from, &r.partial);
    EXPECT_LE(n, cap);
    r.out.resize(n);
    return r;
}

TEST(StoreCounts, CountsOnlyCommittedBatches) {
    Counts c = make(8);
    ASSERT_NE(c, nullptr);
    stage(c.get(), 0x20, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_DENIED, 2, +1);
    EXPECT_TRUE(copy(c.get(), 8).out.empty()); // staged is not counted
    store_counts_discard(c.get());             // the batch failed
    store_counts_commit(c.get());
    EXPECT_TRUE(copy(c.get(), 8).out.empty());

    stage(c.get(), 0x20, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_DENIED, 2, +1);
    stage(c.get(), 0x20, ATLS__VERDICT__VERDICT_WARNED, 3, +1);
    stage(c.get(), 0x20, 7, 4, +1); // a verdict beyond the slots counts in the total only
    store_counts_commit(c.get());
    Copy r = copy(c.get(), 8);
    EXPECT_EQ(r.rc, 0);
    EXPECT_FALSE(r.partial);
    ASSERT_EQ(r.firsts(), (std::vector<int>{0x10, 0x20}));
    EXPECT_EQ(r.out[0].total, 1u);
    EXPECT_EQ(r.out[0].by_verdict[ATLS__VERDICT__VERDICT_DENIED], 1u);
    EXPECT_EQ(r.out[1].total, 3u);
    EXPECT_EQ(r.out[1].by_verdict[ATLS__VERDICT__VERDICT_ALLOWED], 1u);
    EXPECT_EQ(r.out[1].by_verdict[ATLS__VERDICT__VERDICT_WARNED], 1u);

    // Deletes lower the counts; a measurement left with none disappears.
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_DENIED, 2, -1);
    stage(c.get(), 0x20, 7, 4, -1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    ASSERT_EQ(r.firsts(), (std::vector<int>{0x20}));
    EXPECT_EQ(r.out[0].total, 2u);
}

TEST(StoreCounts, AKeyStagedTwiceInOneBatchCountsOnce) {
    // RocksDB keeps one entry for a key put twice (or deleted twice) in one batch.
    Counts c = make(8);
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_ALLOWED, 2, +1);
    store_counts_commit(c.get());
    Copy r = copy(c.get(), 8);
    ASSERT_EQ(r.out.size(), 1u);
    EXPECT_EQ(r.out[0].total, 2u);
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_ALLOWED, 1, -1);
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_ALLOWED, 1, -1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    ASSERT_EQ(r.out.size(), 1u);
    EXPECT_EQ(r.out[0].total, 1u);
}

TEST(StoreCounts, FullTableKeepsTheSmallestMeasurements) {
    Counts c = make(3);
    uint64_t seq = 0;
    for (uint8_t m : {0x50, 0x10, 0x90}) {
        stage(c.get(), m, ATLS__VERDICT__VERDICT_ALLOWED, ++seq, +1);
    }
    store_counts_commit(c.get());
    Copy r = copy(c.get(), 8);
    EXPECT_EQ(r.rc, 0);
    EXPECT_FALSE(r.partial); // everything fits: the answer is complete
    EXPECT_EQ(r.firsts(), (std::vector<int>{0x10, 0x50, 0x90}));

    // A fourth, smaller measurement pushes out the greatest, which becomes the limit.
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_DENIED, ++seq, +1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    EXPECT_EQ(r.rc, 0);
    EXPECT_TRUE(r.partial);
    EXPECT_EQ(r.from[0], 0x90);
    EXPECT_EQ(r.firsts(), (std::vector<int>{0x10, 0x30, 0x50}));
    // A page smaller than the table is answered from it, -ENOSPC included.
    r = copy(c.get(), 2);
    EXPECT_EQ(r.rc, -ENOSPC);
    EXPECT_FALSE(r.partial);
    EXPECT_EQ(r.firsts(), (std::vector<int>{0x10, 0x30}));
    // A page exactly the table's size cannot tell whether more exist: the caller looks.
    r = copy(c.get(), 3);
    EXPECT_EQ(r.rc, 0);
    EXPECT_TRUE(r.partial);
    r = copy(c.get(), 0);
    EXPECT_EQ(r.rc, -ENOSPC);

    // Above every tracked one but below the limit, and full: the limit drops to it.
    stage(c.get(), 0x70, ATLS__VERDICT__VERDICT_ALLOWED, ++seq, +1);
    // At or above the limit: neither counted nor uncounted.
    stage(c.get(), 0x90, ATLS__VERDICT__VERDICT_ALLOWED, ++seq, +1);
    stage(c.get(), 0x90, ATLS__VERDICT__VERDICT_ALLOWED, 3, -1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    EXPECT_TRUE(r.partial);
    EXPECT_EQ(r.from[0], 0x70);
    EXPECT_EQ(r.firsts(), (std::vector<int>{0x10, 0x30, 0x50}));

    // A freed place takes a new measurement below the limit, never one at or above it.
    stage(c.get(), 0x30, ATLS__VERDICT__VERDICT_DENIED, 4, -1);
    store_counts_commit(c.get());
    stage(c.get(), 0x80, ATLS__VERDICT__VERDICT_ALLOWED, ++seq, +1);
    stage(c.get(), 0x40, ATLS__VERDICT__VERDICT_ALLOWED, ++seq, +1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    EXPECT_TRUE(r.partial);
    EXPECT_EQ(r.from[0], 0x70);
    EXPECT_EQ(r.firsts(), (std::vector<int>{0x10, 0x40, 0x50}));
}

TEST(StoreCounts, DeletingWhatWasNeverCountedFallsBackToTheIndex) {
    // The store deletes only entries that exist; a delete the table never counted means the
    // table is wrong, and it must stop answering rather than answer wrong counts.
    Counts c = make(8);
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    store_counts_commit(c.get());
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_DENIED, 2, -1);
    store_counts_commit(c.get());
    Copy r = copy(c.get(), 8);
    EXPECT_EQ(r.rc, 0);
    EXPECT_TRUE(r.partial);
    EXPECT_TRUE(r.out.empty());
    const uint8_t zero[STORE_MEASUREMENT_BYTES] = {};
    EXPECT_EQ(memcmp(r.from, zero, sizeof(zero)), 0); // count everything from the index
    // It stays that way: new entries are not counted either.
    stage(c.get(), 0x20, ATLS__VERDICT__VERDICT_ALLOWED, 3, +1);
    store_counts_commit(c.get());
    r = copy(c.get(), 8);
    EXPECT_TRUE(r.partial);
    EXPECT_TRUE(r.out.empty());
}

TEST(StoreCounts, InvalidateFallsBackToTheIndex) {
    Counts c = make(8);
    stage(c.get(), 0x10, ATLS__VERDICT__VERDICT_ALLOWED, 1, +1);
    store_counts_commit(c.get());
    store_counts_invalidate(c.get());
    Copy r = copy(c.get(), 8);
    EXPECT_TRUE(r.partial);
    EXPECT_TRUE(r.out.empty());
    store_counts_free(nullptr);
}

} // namespace
