// proto_test.cc: tests proto/proto.c — pack/unpack round trips and proto_json_encode.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <string>
#include <vector>

#include "core_base.h"
#include "json_types.pb-c.h"
#include "proto.h"

namespace {

std::string json_of(const ProtobufCMessage *m) {
    std::vector<char> buf(1 << 16);
    size_t len = 0;
    int rc = proto_json_encode(buf.data(), &len, buf.size(), m);
    EXPECT_EQ(rc, 0);
    return std::string(buf.data(), len);
}

struct RecordFixture {
    Atls__AuditRecord rec = ATLS__AUDIT_RECORD__INIT;
    Atls__TcbVersion tcb = ATLS__TCB_VERSION__INIT;
    Atls__FailedCheck fc[2] = {ATLS__FAILED_CHECK__INIT, ATLS__FAILED_CHECK__INIT};
    Atls__FailedCheck *fcp[2] = {&fc[0], &fc[1]};
    uint8_t meas[48];
    uint8_t report[1184];
    char user[8] = "app_rw";
    char code0[32] = "TCB_BELOW_MIN:snp";
    char code1[32] = "DEBUG_ENABLED";
    char detail[32] = "snp 7 < 8";
    char empty[1] = "";

    RecordFixture() {
        for (size_t i = 0; i < sizeof(meas); i++) {
            meas[i] = (uint8_t)i;
        }
        for (size_t i = 0; i < sizeof(report); i++) {
            report[i] = (uint8_t)(i * 7);
        }
        rec.kind = ATLS__AUDIT_KIND__AUDIT_KIND_DECISION;
        rec.time_ns = 1732272000123456789ULL;
        rec.worker = 3;
        rec.seq = 42;
        rec.verdict = ATLS__VERDICT__VERDICT_DENIED;
        rec.measurement = {sizeof(meas), meas};
        rec.report = {sizeof(report), report};
        rec.db_user = user;
        tcb.snp = 7;
        tcb.raw = 0xdeadbeefcafe;
        rec.reported_tcb = &tcb;
        fc[0].code = code0;
        fc[0].detail = detail;
        fc[1].code = code1;
        fc[1].detail = empty;
        rec.n_failed_checks = 2;
        rec.failed_checks = fcp;
    }
};

TEST(Proto, PackUnpackRoundTripKeepsEveryField) {
    RecordFixture f;
    uint8_t buf[4096];
    size_t len = 0;
    ASSERT_EQ(proto_pack(buf, &len, sizeof(buf), &f.rec.base), 0);
    EXPECT_EQ(len, proto_packed_size(&f.rec.base));
    EXPECT_GT(len, 1184u + 48u);

    alignas(16) static uint8_t arena_buf[16384];
    struct proto_arena arena;
    proto_arena_init(&arena, arena_buf, sizeof(arena_buf));
    ProtobufCMessage *m = nullptr;
    ASSERT_EQ(proto_unpack(&arena, &m, &atls__audit_record__descriptor, buf, len), 0);
    auto *r = (Atls__AuditRecord *)m;
    EXPECT_EQ(r->time_ns, f.rec.time_ns);
    EXPECT_EQ(r->verdict, ATLS__VERDICT__VERDICT_DENIED);
    ASSERT_EQ(r->measurement.len, 48u);
    EXPECT_EQ(memcmp(r->measurement.data, f.meas, 48), 0);
    ASSERT_EQ(r->report.len, 1184u);
    EXPECT_EQ(memcmp(r->report.data, f.report, 1184), 0);
    ASSERT_EQ(r->n_failed_checks, 2u);
    EXPECT_STREQ(r->failed_checks[0]->code, "TCB_BELOW_MIN:snp");
    EXPECT_STREQ(r->db_user, "app_rw");
    ASSERT_NE(r->reported_tcb, nullptr);
    EXPECT_EQ(r->reported_tcb->raw, 0xdeadbeefcafeULL);
    // The same bytes re-pack identically (the chain hash depends on it).
    uint8_t buf2[4096];
    size_t len2 = 0;
    ASSERT_EQ(proto_pack(buf2, &len2, sizeof(buf2), m), 0);
    ASSERT_EQ(len2, len);
    EXPECT_EQ(memcmp(buf, buf2, len), 0);
}

TEST(Proto, PackRefusesTooSmallBuffer) {
    RecordFixture f;
    uint8_t buf[1000];
    size_t len = 123;
    EXPECT_EQ(proto_pack(buf, &len, sizeof(buf), &f.rec.base), -EMSGSIZE);
    EXPECT_EQ(len, 0u);
}

TEST(Proto, UnpackRejectsGarbage) {
    alignas(16) static uint8_t arena_buf[16384];
    struct proto_arena arena;
    proto_arena_init(&arena, arena_buf, sizeof(arena_buf));
    ProtobufCMessage *m = nullptr;
    // Field 17 (bytes) claiming 1000 bytes with only 3 present.
    const uint8_t truncated[] = {0x8a, 0x01, 0xe8, 0x07, 1, 2, 3};
    EXPECT_EQ(proto_unpack(&arena, &m, &atls__audit_record__descriptor, truncated,
                           sizeof(truncated)),
              -EBADMSG);
    EXPECT_EQ(m, nullptr);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    EXPECT_EQ(proto_unpack(&arena, &m, &atls__audit_record__descriptor, junk, sizeof(junk)),
              -EBADMSG);
}

TEST(Proto, UnpackReportsArenaTooSmall) {
    RecordFixture f;
    uint8_t buf[4096];
    size_t len = 0;
    ASSERT_EQ(proto_pack(buf, &len, sizeof(buf), &f.rec.base), 0);
    alignas(16) static uint8_t small[512];
    struct proto_arena arena;
    proto_arena_init(&arena, small, sizeof(small));
    ProtobufCMessage *m = nullptr;
    EXPECT_EQ(proto_unpack(&arena, &m, &atls__audit_record__descriptor, buf, len), -ENOMEM);
}

TEST(ProtoJson, EncodesEveryFieldType) {
    Jt__AllTypes m = JT__ALL_TYPES__INIT;
    m.i32 = -5;
    m.s32 = -2147483647 - 1;
    m.sf32 = 7;
    m.u32 = 4294967295u;
    m.f32 = 9;
    m.i64 = INT64_MIN;
    m.s64 = -1;
    m.sf64 = 123;
    m.u64 = UINT64_MAX;
    m.f64 = 1732272000123456789ULL;
    m.fl = 1.5f;
    m.db = 0.1;
    m.b = 1;
    m.color = JT__COLOR__COLOR_GREEN;
    char str[] = "a\"b\\c\n\x01";
    m.str = str;
    uint8_t by[] = {0x00, 0xab, 0xff};
    m.by = {sizeof(by), by};
    Jt__Inner inner = JT__INNER__INIT;
    inner.has_a = 1;
    inner.a = 9;
    m.inner = &inner;
    int32_t ri[] = {1, -2, 3};
    m.n_r_i32 = 3;
    m.r_i32 = ri;
    char s1[] = "x", s2[] = "";
    char *rs[] = {s1, s2};
    m.n_r_str = 2;
    m.r_str = rs;
    Jt__Inner in2 = JT__INNER__INIT;
    char is[] = "q";
    in2.s = is;
    Jt__Inner *rin[] = {&inner, &in2};
    m.n_r_inner = 2;
    m.r_inner = rin;
    uint8_t b1[] = {1}, b2[] = {0xfe, 0xed};
    ProtobufCBinaryData rb[] = {{1, b1}, {2, b2}};
    m.n_r_by = 2;
    m.r_by = rb;
    Jt__Color rc[] = {JT__COLOR__COLOR_RED, (Jt__Color)77};
    m.n_r_color = 2;
    m.r_color = rc;
    m.choice_case = JT__ALL_TYPES__CHOICE_C_STR;
    char cs[] = "chosen";
    m.c_str = cs;
    double rd[] = {NAN, INFINITY, -INFINITY, -0.25};
    m.n_r_db = 4;
    m.r_db = rd;
    protobuf_c_boolean rbo[] = {0, 1};
    m.n_r_b = 2;
    m.r_b = rbo;
    uint64_t ru[] = {0, 18446744073709551615ULL};
    m.n_r_u64 = 2;
    m.r_u64 = ru;

    EXPECT_EQ(json_of(&m.base),
              "{\"i32\":-5,\"s32\":-2147483648,\"sf32\":7,\"u32\":4294967295,\"f32\":9,"
              "\"i64\":\"-9223372036854775808\",\"s64\":\"-1\",\"sf64\":\"123\","
              "\"u64\":\"18446744073709551615\",\"f64\":\"1732272000123456789\","
              "\"fl\":1.5,\"db\":0.10000000000000001,\"b\":true,\"color\":\"COLOR_GREEN\","
              "\"str\":\"a\\\"b\\\\c\\n\\u0001\",\"by\":\"00abff\",\"inner\":{\"a\":9},"
              "\"r_i32\":[1,-2,3],\"r_str\":[\"x\",\"\"],\"r_inner\":[{\"a\":9},{\"s\":\"q\"}],"
              "\"r_by\":[\"01\",\"feed\"],\"r_color\":[\"COLOR_RED\",77],"
              "\"c_str\":\"chosen\",\"r_db\":[\"NaN\",\"Infinity\",\"-Infinity\",-0.25],"
              "\"r_b\":[false,true],\"r_u64\":[\"0\",\"18446744073709551615\"]}");
}

TEST(ProtoJson, OmitsAbsentOptionalsAndWritesEmptyRepeated) {
    Jt__AllTypes m = JT__ALL_TYPES__INIT;
    std::string j = json_of(&m.base);
    EXPECT_EQ(j.find("\"inner\""), std::string::npos);   // absent proto2 optional message
    EXPECT_EQ(j.find("\"opt_u32\""), std::string::npos); // absent proto2 optional scalar
    EXPECT_EQ(j.find("\"c_int\""), std::string::npos);   // unset oneof
    EXPECT_NE(j.find("\"r_i32\":[]"), std::string::npos);
    EXPECT_NE(j.find("\"str\":\"\""), std::string::npos);
    m.has_opt_u32 = 1;
    m.opt_u32 = 0;
    EXPECT_NE(json_of(&m.base).find("\"opt_u32\":0"), std::string::npos);
}

TEST(ProtoJson, AuditRecordProto3WritesAllFieldsAndEnumsByName) {
    RecordFixture f;
    std::string j = json_of(&f.rec.base);
    EXPECT_EQ(j.rfind("{\"kind\":\"AUDIT_KIND_DECISION\",\"time_ns\":\"1732272000123456789\","
                      "\"node_id\":\"\",\"worker\":3,\"seq\":\"42\",",
                      0),
              0u)
        << j;
    EXPECT_NE(j.find("\"verdict\":\"VERDICT_DENIED\""), std::string::npos);
    EXPECT_NE(j.find("\"failed_checks\":[{\"code\":\"TCB_BELOW_MIN:snp\",\"detail\":\"snp 7 < 8\"},"
                     "{\"code\":\"DEBUG_ENABLED\",\"detail\":\"\"}]"),
              std::string::npos);
    EXPECT_NE(j.find("\"measurement\":\"000102030405060708090a0b0c0d0e0f"), std::string::npos);
    EXPECT_NE(j.find("\"reported_tcb\":{\"bootloader\":0,\"tee\":0,\"snp\":7,\"microcode\":0,"
                     "\"fmc\":0,\"raw\":\"244837814094590\"}"),
              std::string::npos);
    EXPECT_NE(j.find("\"prev_sha256\":\"\""), std::string::npos);
    EXPECT_NE(j.find("\"sections_disabled\":[]"), std::string::npos);
    EXPECT_EQ(j.back(), '}');
}

// JSON must be UTF-8: valid sequences (2, 3, 4 bytes) pass as they are, and every byte that is
// not part of one becomes \ufffd, so any string field gives valid JSON.
TEST(ProtoJson, StringsAreAlwaysValidUtf8) {
    Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
    struct Case {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92"},
        {"a\xff" "b", "a\\ufffdb"},
        {"\xc3", "\\ufffd"},                             // truncated at the end
        {"\xe2\x82" "x", "\\ufffd\\ufffdx"},             // truncated, then ASCII
        {"\xc0\xaf", "\\ufffd\\ufffd"},                  // overlong '/'
        {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},       // overlong, three bytes
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},       // a surrogate
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, // above U+10FFFF
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},       // U+10FFFF itself
        {"\x80" "\"\n", "\\ufffd\\\"\\n"},
    };
    for (const Case &c : cases) {
        std::string in = c.in;
        r.db_user = const_cast<char *>(in.c_str());
        std::string j = json_of(&r.base);
        std::string want = "\"db_user\":\"" + std::string(c.out) + "\"";
        EXPECT_NE(j.find(want), std::string::npos) << "in: " << in << "\njson: " << j;
        EXPECT_TRUE(core_base_utf8_valid(reinterpret_cast<const uint8_t *>(j.data()), j.size())) << j;
    }
}

TEST(ProtoJson, UnsetSubMessageIsNull) {
    Atls__AttestationList list = ATLS__ATTESTATION_LIST__INIT;
    EXPECT_EQ(json_of(&list.base), "{\"records\":[],\"next_cursor\":\"\",\"unreadable\":0}");
    Atls__AuditRecord r = ATLS__AUDIT_RECORD__INIT;
    EXPECT_NE(json_of(&r.base).find("\"reported_tcb\":null"), std::string::npos);
}

TEST(ProtoJson, ReportsNoSpaceForEveryShortBuffer) {
    RecordFixture f;
    std::string full = json_of(&f.rec.base);
    std::vector<char> buf(full.size() + 1);
    size_t len = 0;
    ASSERT_EQ(proto_json_encode(buf.data(), &len, buf.size(), &f.rec.base), 0);
    EXPECT_EQ(std::string(buf.data(), len), full);
    for (size_t cap = 0; cap < full.size() + 1; cap += 37) {
        EXPECT_EQ(proto_json_encode(buf.data(), &len, cap, &f.rec.base), -ENOSPC) << cap;
        EXPECT_EQ(len, 0u);
    }
    EXPECT_EQ(proto_json_encode(buf.data(), &len, full.size(), &f.rec.base), -ENOSPC);
}

TEST(ProtoJson, RefusesNestingBeyondMax) {
    std::vector<Jt__Nest> chain(PROTO_JSON_DEPTH_MAX + 3);
    for (size_t i = 0; i < chain.size(); i++) {
        chain[i] = JT__NEST__INIT;
        if (i > 0) {
            chain[i - 1].child = &chain[i];
        }
    }
    std::vector<char> buf(1 << 12);
    size_t len = 0;
    EXPECT_EQ(proto_json_encode(buf.data(), &len, buf.size(), &chain[0].base), -ELOOP);
    // Within the bound it encodes.
    chain[PROTO_JSON_DEPTH_MAX - 1].child = nullptr;
    EXPECT_EQ(proto_json_encode(buf.data(), &len, buf.size(), &chain[0].base), 0);
}

TEST(ProtoJson, ApiMessagesEncode) {
    Atls__NonceResponse n = ATLS__NONCE_RESPONSE__INIT;
    char hex[] = "00ff";
    n.nonce = hex;
    n.expires_in = 300;
    n.timestamp = 1732272000;
    EXPECT_EQ(json_of(&n.base),
              "{\"nonce\":\"00ff\",\"expires_in\":300,\"timestamp\":\"1732272000\"}");
}

} // namespace
