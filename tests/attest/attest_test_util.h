// attest_test_util.h: helpers shared by the attest tests: vector files, the shared simulated
// hierarchy directory, hex.
#ifndef ATLS_ATTEST_TEST_UTIL_H
#define ATLS_ATTEST_TEST_UTIL_H

#include <cstring>
#include <sys/stat.h>
#include <gtest/gtest.h>
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

inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

// The GUIDs of the SEV certificate table (GHCB spec / the sev-guest extended report).
inline constexpr uint8_t kGuidVcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                          0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
inline constexpr uint8_t kGuidAsk[16] = {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
                                         0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82};
inline constexpr uint8_t kGuidArk[16] = {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
                                         0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae};

// cert_table builds a certificate table with the given entries followed by the zero terminator.
inline std::vector<uint8_t>
cert_table(const std::vector<std::pair<const uint8_t *, std::vector<uint8_t>>> &e) {
    std::vector<uint8_t> t((e.size() + 1) * 24, 0);
    for (size_t i = 0; i < e.size(); i++) {
        memcpy(&t[i * 24], e[i].first, 16);
        put_le32(&t[i * 24 + 16], (uint32_t)t.size());
        put_le32(&t[i * 24 + 20], (uint32_t)e[i].second.size());
        t.insert(t.end(), e[i].second.begin(), e[i].second.end());
    }
    return t;
}

// SimEnv makes the shared simulated RSA-4096 hierarchy once per test binary (and across
// ctest's per-case processes); a test file registers it with AddGlobalTestEnvironment.
class SimEnv : public ::testing::Environment {
  public:
    void SetUp() override {
        mkdir((std::string(ATLS_BINARY_DIR) + "/tests").c_str(), 0755);
        mkdir((std::string(ATLS_BINARY_DIR) + "/tests/attest").c_str(), 0755);
        attest_provider_config cfg;
        attest_provider_config_init(&cfg);
        attest_error err{};
        ASSERT_EQ(attest_sim_ensure(&err, sim_dir().c_str(), &cfg.sim), ATTEST_OK) << err.msg;
    }
};

} // namespace attest_test

#endif
