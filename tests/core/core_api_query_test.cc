// core_api_parse_accept: which of JSON and protobuf an Accept header prefers (RFC 9110 §12.5.1).
#include <gtest/gtest.h>

#include <string>

#include "core_api_query.h"

namespace {

constexpr core_api_accept kJson = CORE_API_ACCEPT_JSON;
constexpr core_api_accept kPb = CORE_API_ACCEPT_PROTOBUF;
constexpr core_api_accept kEither = CORE_API_ACCEPT_EITHER;

TEST(ApiAccept, ExactTypesAndCase) {
    EXPECT_EQ(core_api_parse_accept(nullptr), kEither);
    EXPECT_EQ(core_api_parse_accept(""), kEither);
    EXPECT_EQ(core_api_parse_accept("application/json"), kJson);
    EXPECT_EQ(core_api_parse_accept("Application/JSON"), kJson);
    EXPECT_EQ(core_api_parse_accept("application/x-protobuf"), kPb);
    EXPECT_EQ(core_api_parse_accept(" application/x-protobuf ; charset=binary "), kPb);
    EXPECT_EQ(core_api_parse_accept("application/json, application/x-protobuf"), kEither);
}

// Substrings are not types: these named neither format before they were parsed as ranges, and
// the first one chose JSON.
TEST(ApiAccept, LookalikeTypesNameNeither) {
    EXPECT_EQ(core_api_parse_accept("application/jsonx"), kEither);
    EXPECT_EQ(core_api_parse_accept("application/json-seq"), kEither);
    EXPECT_EQ(core_api_parse_accept("text/html;note=application/json"), kEither);
    EXPECT_EQ(core_api_parse_accept("xapplication/x-protobuf"), kEither);
}

TEST(ApiAccept, QualityDecides) {
    EXPECT_EQ(core_api_parse_accept("application/json;q=0.5, application/x-protobuf;q=0.9"), kPb);
    EXPECT_EQ(core_api_parse_accept("application/x-protobuf;q=0.1,application/json"), kJson);
    EXPECT_EQ(core_api_parse_accept("application/json; Q = 0.501, application/x-protobuf;q=0.5"),
              kJson);
    EXPECT_EQ(core_api_parse_accept("application/json;q=1.000"), kJson);
    // q=0 means "not acceptable": that format is not chosen.
    EXPECT_EQ(core_api_parse_accept("application/json;q=0"), kEither);
    EXPECT_EQ(core_api_parse_accept("application/json;q=0, */*"), kPb);
    EXPECT_EQ(core_api_parse_accept("application/x-protobuf;q=0.0, application/*;q=0.2"), kJson);
}

TEST(ApiAccept, WildcardsCountBelowAnExactType) {
    // A browser's navigation header: both formats at */*'s q, a tie.
    EXPECT_EQ(core_api_parse_accept("text/html,application/xhtml+xml,application/xml;q=0.9,"
                                    "*/*;q=0.8"),
              kEither);
    EXPECT_EQ(core_api_parse_accept("*/*;q=0.1, application/json;q=0.2"), kJson);
    // The exact type's q holds even when a wildcard's is higher.
    EXPECT_EQ(core_api_parse_accept("application/*, application/json;q=0.3"), kPb);
}

TEST(ApiAccept, MalformedQualityIgnoresTheRange) {
    for (const char *bad : {"q=2", "q=1.5", "q=0.1234", "q=abc", "q=", "q=.5", "q=-0"}) {
        std::string h = std::string("application/json;") + bad + ", application/x-protobuf;q=0.1";
        EXPECT_EQ(core_api_parse_accept(h.c_str()), kPb) << h;
    }
    EXPECT_EQ(core_api_parse_accept(",,;;,=;q"), kEither);
    EXPECT_EQ(core_api_parse_accept("application/json;q"), kJson); // no value: not a q
}

} // namespace
