// attest_test_util.h: helpers shared by the attest tests: vector files, the shared simulated
// hierarchy directory, hex.
#ifndef ATLS_ATTEST_TEST_UTIL_H
#define ATLS_ATTEST_TEST_UTIL_H

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "attest.h"
#include "attest_internal.h"

namespace attest_test {

inline std::string vector_path(const std::string &name) {
    return std::string(ATLS_SOURCE_DIR) + "/tests/attest/vectors/" + name;
}

inline std::vector<uint8_t> read_bytes(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<uint8_t> vec(const std::string &name) {
    return read_bytes(vector_path(name));
}

inline std::string hex(const uint8_t *p, size_t n) {
    static const char d[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; i++) {
        s += d[p[i] >> 4];
        s += d[p[i] & 15];
    }
    return s;
}

// sim_dir is shared by every test process (ctest runs each case in its own process): created on
// first use (RSA-4096 keygen, seconds), re-used afterwards.
inline std::string sim_dir() {
    return std::string(ATLS_BINARY_DIR) + "/tests/attest/sim-hierarchy";
}

inline std::string sim_ark() {
    return sim_dir() + "/ark.pem";
}

// Fixed verification times: every real VCEK is valid on 2026-05-28 (the mstee ones only since
// 2026-02-05); the VLEK only 2024-12-10..2025-12-10, so it is checked on 2025-06-15.
constexpr int64_t kFixedTime = 1780000000;
constexpr int64_t kVlekTime = 1750000000;

} // namespace attest_test

#endif
