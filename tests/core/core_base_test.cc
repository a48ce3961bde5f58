// Tests for core/core_base.c: hex helpers and clocks.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "core_base.h"

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
