// Tests for core/core_base.c: hex helpers, clocks, core_base_copy and the log line writer.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "core_base.h"

namespace {

// LogLine returns what one core_base_log call at INFO writes to stderr.
std::string LogLine(const char *msg) {
    char path[] = "/tmp/atls-log-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    core_base_log(CORE_LOG_INFO, "test", "user \"%s\" refused", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    std::string out(4096, '\0');
    ssize_t n = pread(fd, &out[0], out.size(), 0);
    close(fd);
    unlink(path);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

} // namespace

TEST(CoreBase, LogWritesOneLinePerEventWhateverTheMessageHolds) {
    EXPECT_EQ(LogLine("app"), "INFO test: user \"app\" refused\n");
    // A name with a newline cannot start a forged line; other control bytes are masked too.
    EXPECT_EQ(LogLine("x\nERROR forged: admitted\r\x1b[2J\x7f"),
              "INFO test: user \"x?ERROR forged: admitted??[2J?\" refused\n");
    EXPECT_EQ(LogLine("caf\xc3\xa9"), "INFO test: user \"caf\xc3\xa9\" refused\n");
}

TEST(CoreBase, HexRoundTrip) {
    const uint8_t in[4] = {0x00, 0x7f, 0xa5, 0xff};
    char hex[9];
    core_base_hex_encode(hex, in, sizeof(in));
    EXPECT_STREQ(hex, "007fa5ff");
    uint8_t out[4] = {};
    ASSERT_EQ(core_base_hex_decode(out, sizeof(out), "007FA5ff"), 0);
    EXPECT_EQ(memcmp(in, out, sizeof(in)), 0);
}

TEST(CoreBase, HexDecodeRejectsBadInput) {
    uint8_t out[2];
    EXPECT_EQ(core_base_hex_decode(out, 2, "abc"), -EINVAL);    // odd/short
    EXPECT_EQ(core_base_hex_decode(out, 2, "abcdef"), -EINVAL); // long
    EXPECT_EQ(core_base_hex_decode(out, 2, "zz00"), -EINVAL);   // not hex
}

TEST(CoreBase, MonotonicClockAdvances) {
    uint64_t a = core_base_now_ns();
    uint64_t b = core_base_now_ns();
    EXPECT_LE(a, b);
    EXPECT_GT(core_base_wall_ns(), 1700000000ull * 1000000000ull);
}

TEST(CoreBase, LogDueAtMostOnceASecond) {
    uint64_t last = 0;
    EXPECT_TRUE(core_base_log_due(&last)); // the first is always due
    EXPECT_GT(last, 0u);
    uint64_t first = last;
    EXPECT_FALSE(core_base_log_due(&last)); // within the second: not again
    EXPECT_EQ(last, first);
    last -= 1000000001ull; // as if the last one was more than a second ago
    EXPECT_TRUE(core_base_log_due(&last));
}

TEST(CoreBase, CopySlowCaseIsTheShortDistancePast4KiB) {
    alignas(4096) static uint8_t a[8192];
    const size_t big = CORE_BASE_COPY_LOOP_MIN;
    EXPECT_FALSE(core_base_copy_is_slow(a + 4096, a, big));      // same offset in the page
    EXPECT_TRUE(core_base_copy_is_slow(a + 4096 + 1, a, big));   // 1 byte past
    EXPECT_TRUE(core_base_copy_is_slow(a + 4096 + 63, a, big));  // 63 bytes past
    EXPECT_FALSE(core_base_copy_is_slow(a + 4096 + 64, a, big)); // 64 past: memcpy is fine
    EXPECT_FALSE(core_base_copy_is_slow(a + 4096 - 8, a, big));  // before, not past
    EXPECT_FALSE(core_base_copy_is_slow(a + 4096 + 8, a, big - 1)); // too short for rep movsb
}

// Every length around the loop's block size and threshold, at distances inside and outside the
// slow case: the destination holds the source's bytes and nothing around it changed.
TEST(CoreBase, CopyMatchesMemcpyAtEveryDistanceAndLength) {
    const size_t lens[] = {0, 1, 63, 64, 65, 2047, 2048, 2049, 2111, 16384, 16406, 65536 + 7};
    const size_t max_len = 65536 + 7;
    std::vector<uint8_t> src(max_len + 8192), dst(max_len + 8192 + 256);
    for (size_t i = 0; i < src.size(); i++) {
        src[i] = (uint8_t)(i * 131u + (i >> 8) * 7u + 1u);
    }
    uintptr_t sbase = (uintptr_t)src.data();
    int slow_cases = 0;
    for (size_t len : lens) {
        for (size_t dist : {0u, 1u, 5u, 8u, 22u, 31u, 63u, 64u, 65u, 200u, 4095u}) {
            // Place the destination `dist` bytes past the source modulo 4 KiB.
            size_t s_off = 37;
            uintptr_t want = (sbase + s_off + dist) & 4095u;
            size_t d_off = 128;
            while ((((uintptr_t)dst.data() + d_off) & 4095u) != want) {
                d_off++;
            }
            ASSERT_LE(d_off + len + 128, dst.size());
            std::fill(dst.begin(), dst.end(), 0xEE);
            uint8_t *d = dst.data() + d_off;
            const uint8_t *s = src.data() + s_off;
            slow_cases += core_base_copy_is_slow(d, s, len) ? 1 : 0;
            core_base_copy(d, s, len);
            ASSERT_EQ(memcmp(d, s, len), 0) << "len " << len << " dist " << dist;
            for (size_t k = 0; k < d_off; k++) {
                ASSERT_EQ(dst[k], 0xEE) << "before: len " << len << " dist " << dist;
            }
            for (size_t k = d_off + len; k < dst.size(); k++) {
                ASSERT_EQ(dst[k], 0xEE) << "after: len " << len << " dist " << dist;
            }
        }
    }
    EXPECT_EQ(slow_cases, 6 * 6); // lengths >= 2048 x distances 1..63: the loop ran
}

TEST(CoreBase, Utf8ValidatesSequences) {
    auto valid = [](const std::string &s) {
        return core_base_utf8_valid(reinterpret_cast<const uint8_t *>(s.data()), s.size());
    };
    EXPECT_TRUE(valid(""));
    EXPECT_TRUE(valid(std::string("a\0b", 3)));
    EXPECT_TRUE(valid("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"));
    for (const char *bad : {"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x9f\xbf",
                            "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
                            "\xf5\x80\x80\x80", "\xff", "\xe1\x80", "\xf1\x80\x80"}) {
        EXPECT_FALSE(valid(bad)) << "accepted " << ::testing::PrintToString(std::string(bad));
    }
    const uint8_t four[] = {0xf0, 0x9f, 0x94, 0x92};
    EXPECT_EQ(core_base_utf8_seq_len(four, 4), 4u);
    EXPECT_EQ(core_base_utf8_seq_len(four, 3), 0u); // the length bounds the look-ahead
}
