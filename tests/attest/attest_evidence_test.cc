// attest_evidence_test.cc: attest/attest_evidence.c: DER codec of AttestationEvidence (strict),
// certificate extraction and the REPORT_DATA binding (DESIGN.md §5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include <openssl/bytestring.h>
#include <openssl/asn1.h>
#include <openssl/mem.h>
#include <openssl/obj.h>

#include "attest_test_util.h"

using namespace attest_test;

namespace {

attest_evidence sample(bool with_certs) {
    attest_evidence ev{};
    ev.nonce_len = 32;
    memset(ev.nonce, 0x11, 32);
    auto r = vec("virtee_milan_v2_report.bin");
    memcpy(ev.report, r.data(), r.size());
    if (with_certs) {
        auto v = vec("virtee_milan_v2_vcek.der");
        memcpy(ev.vcek_der, v.data(), v.size());
        ev.vcek_len = v.size();
        ev.chain_len = 3;
        memcpy(ev.chain_der, "\x30\x01\x00", 3);
    }
    return ev;
}

std::vector<uint8_t> encode(const attest_evidence &ev) {
    std::vector<uint8_t> out(ATTEST_EVIDENCE_DER_MAX_BYTES);
    size_t len = 0;
    EXPECT_EQ(attest_evidence_encode(out.data(), out.size(), &len, &ev), 0);
    out.resize(len);
    return out;
}

attest_status decode(const std::vector<uint8_t> &der, attest_error *err = nullptr) {
    attest_evidence ev{};
    return attest_evidence_decode(&ev, err, der.data(), der.size());
}

// build assembles an evidence SEQUENCE from raw field encodings.
std::vector<uint8_t> build(const std::vector<std::vector<uint8_t>> &fields) {
    CBB cbb, seq;
    CBB_init(&cbb, 2048);
    CBB_add_asn1(&cbb, &seq, CBS_ASN1_SEQUENCE);
    for (const auto &f : fields) {
        CBB_add_bytes(&seq, f.data(), f.size());
    }
    uint8_t *p = nullptr;
    size_t len = 0;
    CBB_finish(&cbb, &p, &len);
    std::vector<uint8_t> out(p, p + len);
    OPENSSL_free(p);
    return out;
}

std::vector<uint8_t> tlv(unsigned tag, size_t len, uint8_t fill = 0) {
    CBB cbb, c;
    CBB_init(&cbb, len + 8);
    CBB_add_asn1(&cbb, &c, tag);
    for (size_t i = 0; i < len; i++) {
        CBB_add_u8(&c, fill);
    }
    uint8_t *p = nullptr;
    size_t n = 0;
    CBB_finish(&cbb, &p, &n);
    std::vector<uint8_t> out(p, p + n);
    OPENSSL_free(p);
    return out;
}

const std::vector<uint8_t> kVersion = {0x02, 0x01, 0x01};
const std::vector<uint8_t> kPlatform = {0x0a, 0x01, 0x01};

} // namespace

TEST(AttestEvidence, OidBytesDeriveFromTheDesignUuid) {
    // 2.25.<UUID 8d11fd59-ed44-4a5c-858c-42f67916fc39 as an integer> (X.667): first octet
    // 2*40+25, then the 128-bit integer in base 128.
    const uint8_t uuid[16] = {0x8d, 0x11, 0xfd, 0x59, 0xed, 0x44, 0x4a, 0x5c,
                              0x85, 0x8c, 0x42, 0xf6, 0x79, 0x16, 0xfc, 0x39};
    std::vector<uint8_t> digits; // base-128 digits, least significant first
    std::vector<uint8_t> n(uuid, uuid + 16);
    while (std::any_of(n.begin(), n.end(), [](uint8_t b) { return b != 0; })) {
        unsigned rem = 0;
        for (auto &b : n) { // divide the big-endian number by 128
            unsigned cur = rem << 8 | b;
            b = (uint8_t)(cur / 128);
            rem = cur % 128;
        }
        digits.push_back((uint8_t)rem);
    }
    std::vector<uint8_t> want = {2 * 40 + 25};
    for (size_t i = digits.size(); i-- > 0;) {
        want.push_back((uint8_t)(digits[i] | (i > 0 ? 0x80 : 0)));
    }
    ASSERT_EQ(want.size(), (size_t)ATTEST_EVIDENCE_OID_BYTES);
    EXPECT_EQ(memcmp(want.data(), attest_evidence_oid, want.size()), 0);
}

TEST(AttestEvidence, RoundTripWithAndWithoutCerts) {
    for (bool certs : {false, true}) {
        attest_evidence ev = sample(certs);
        auto der = encode(ev);
        attest_evidence back{};
        attest_error err{};
        ASSERT_EQ(attest_evidence_decode(&back, &err, der.data(), der.size()), ATTEST_OK)
            << err.msg;
        EXPECT_EQ(back.nonce_len, 32u);
        EXPECT_EQ(memcmp(back.report, ev.report, ATTEST_REPORT_BYTES), 0);
        EXPECT_EQ(back.vcek_len, ev.vcek_len);
        EXPECT_EQ(memcmp(back.vcek_der, ev.vcek_der, ev.vcek_len), 0);
        EXPECT_EQ(back.chain_len, ev.chain_len);
        EXPECT_FALSE(back.has_spki);
    }
}

TEST(AttestEvidence, EncodeRejectsBadNonceSizeAndSmallBuffer) {
    attest_evidence ev = sample(false);
    uint8_t buf[ATTEST_EVIDENCE_DER_MAX_BYTES];
    size_t len = 0;
    ev.nonce_len = 15;
    EXPECT_EQ(attest_evidence_encode(buf, sizeof(buf), &len, &ev), -EINVAL);
    ev.nonce_len = 65;
    EXPECT_EQ(attest_evidence_encode(buf, sizeof(buf), &len, &ev), -EINVAL);
    ev.nonce_len = 16;
    EXPECT_EQ(attest_evidence_encode(buf, 100, &len, &ev), -ENOSPC);
}

TEST(AttestEvidence, HandBuiltMinimalDecodes) {
    auto der = build({kVersion, kPlatform, tlv(0x04, 16), tlv(0x04, 1184)});
    EXPECT_EQ(decode(der), ATTEST_OK);
}

TEST(AttestEvidence, NonceSizeLimits) {
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 15), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 64), tlv(0x04, 1184)})), ATTEST_OK);
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 65), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, ReportMustBeExactly1184) {
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1183)})),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1185)})),
              ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, WrongVersionOrPlatformRejected) {
    EXPECT_EQ(decode(build({{0x02, 0x01, 0x02}, kPlatform, tlv(0x04, 32), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_EQ(decode(build({kVersion, {0x0a, 0x01, 0x02}, tlv(0x04, 32), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, WrongTagsRejected) {
    // platform as INTEGER instead of ENUMERATED
    EXPECT_EQ(decode(build({kVersion, {0x02, 0x01, 0x01}, tlv(0x04, 32), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
    // nonce as BIT STRING
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x03, 32), tlv(0x04, 1184)})),
              ATTEST_EVIDENCE_MALFORMED);
    // vcek with EXPLICIT (constructed) tag instead of IMPLICIT
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1184), tlv(0xa0, 4)})),
              ATTEST_EVIDENCE_MALFORMED);
    // chain before vcek
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1184), tlv(0x81, 4),
                            tlv(0x80, 4)})),
              ATTEST_EVIDENCE_MALFORMED);
    // outer SET instead of SEQUENCE
    auto der = build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1184)});
    der[0] = 0x31;
    EXPECT_EQ(decode(der), ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, TrailingBytesRejected) {
    auto der = encode(sample(true));
    der.push_back(0x00);
    attest_error err{};
    EXPECT_EQ(decode(der, &err), ATTEST_EVIDENCE_MALFORMED);
    EXPECT_NE(strstr(err.msg, "trailing"), nullptr) << err.msg;
    // An extra field inside the SEQUENCE after the chain.
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1184), tlv(0x04, 1)})),
              ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, BadAndHugeLengthsRejected) {
    auto der = encode(sample(false));
    // Outer length claims 0x7fffffff bytes (4-byte long form).
    std::vector<uint8_t> huge = {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff};
    huge.insert(huge.end(), der.begin() + 4, der.end());
    EXPECT_EQ(decode(huge), ATTEST_EVIDENCE_MALFORMED);
    // Truncated anywhere.
    for (size_t cut : {(size_t)1, (size_t)5, der.size() / 2, der.size() - 1}) {
        std::vector<uint8_t> t(der.begin(), der.begin() + (long)cut);
        EXPECT_EQ(decode(t), ATTEST_EVIDENCE_MALFORMED) << cut;
    }
    // Non-minimal length encoding (DER forbids): 0x81 0x10 for a 16-byte nonce. build() computes
    // the outer SEQUENCE length over the fields as given, so the long-form nonce length is the
    // only thing wrong; the control with the short form 0x10 must decode.
    std::vector<uint8_t> nonce_short = {0x04, 0x10}, nonce_long = {0x04, 0x81, 0x10};
    nonce_short.insert(nonce_short.end(), 16, 0x5a);
    nonce_long.insert(nonce_long.end(), 16, 0x5a);
    attest_error nm_err{};
    ASSERT_EQ(decode(build({kVersion, kPlatform, nonce_short, tlv(0x04, 1184)}), &nm_err),
              ATTEST_OK)
        << nm_err.msg;
    auto nm = build({kVersion, kPlatform, nonce_long, tlv(0x04, 1184)});
    ASSERT_EQ(nm.size(), build({kVersion, kPlatform, nonce_short, tlv(0x04, 1184)}).size() + 1);
    EXPECT_EQ(decode(nm, &nm_err), ATTEST_EVIDENCE_MALFORMED);
    EXPECT_NE(strstr(nm_err.msg, "nonce"), nullptr) << nm_err.msg;
    // The same for the outer SEQUENCE: 0x30 0x82 0x04 0xNN is the minimal form for this length,
    // 0x30 0x83 0x00 0x04 0xNN is not.
    auto outer = build({kVersion, kPlatform, nonce_short, tlv(0x04, 1184)});
    ASSERT_EQ(outer[1], 0x82);
    std::vector<uint8_t> outer_long = {0x30, 0x83, 0x00};
    outer_long.insert(outer_long.end(), outer.begin() + 2, outer.end());
    EXPECT_EQ(decode(outer_long), ATTEST_EVIDENCE_MALFORMED);
    // VCEK over the 4096-byte limit.
    EXPECT_EQ(decode(build({kVersion, kPlatform, tlv(0x04, 32), tlv(0x04, 1184), tlv(0x80, 4097)})),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_EQ(decode({}), ATTEST_EVIDENCE_MALFORMED);
}

TEST(AttestEvidence, BindingKnownAnswer) {
    uint8_t nonce[32], spki[32], out[64];
    memset(nonce, 0x11, 32);
    memset(spki, 0x22, 32);
    attest_evidence_binding(out, nonce, 32, spki);
    EXPECT_EQ(hex(out, 64),
              "f46714b56f930aac1169de52ab28bccad0faffa947a47cae8f664607d3b1fc22b13e05f04bdb4e8024bf"
              "84056c90af7a37c4c46e9d47d0a1b7d87481148bcbcd");
}

TEST(AttestEvidence, BindingMismatchOnOtherNonceOrKey) {
    attest_evidence ev = sample(false);
    memset(ev.spki_sha256, 0x22, 32);
    ev.has_spki = true;
    attest_evidence_binding(ev.report + 0x50, ev.nonce, ev.nonce_len, ev.spki_sha256);
    EXPECT_EQ(attest_evidence_check_binding(&ev, nullptr), ATTEST_OK);
    attest_evidence other_nonce = ev;
    other_nonce.nonce[0] ^= 1;
    attest_error err{};
    EXPECT_EQ(attest_evidence_check_binding(&other_nonce, &err), ATTEST_BINDING_MISMATCH);
    EXPECT_STREQ(attest_status_code(err.status), "BINDING_MISMATCH");
    attest_evidence other_key = ev;
    other_key.spki_sha256[31] ^= 1;
    EXPECT_EQ(attest_evidence_check_binding(&other_key, nullptr), ATTEST_BINDING_MISMATCH);
    attest_evidence no_cert = ev;
    no_cert.has_spki = false;
    EXPECT_EQ(attest_evidence_check_binding(&no_cert, nullptr), ATTEST_BINDING_MISMATCH);
}

TEST(AttestEvidence, CertWithoutExtensionIsMalformed) {
    auto cert = vec("virtee_milan_v2_vcek.der"); // a real certificate, no evidence extension
    attest_evidence ev{};
    attest_error err{};
    EXPECT_EQ(attest_evidence_from_cert(&ev, &err, cert.data(), cert.size()),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_NE(strstr(err.msg, "no attestation evidence"), nullptr) << err.msg;
}

TEST(AttestEvidence, GarbageCertIsMalformed) {
    std::vector<uint8_t> junk = {0x30, 0x03, 0x02, 0x01, 0x01};
    attest_evidence ev{};
    EXPECT_EQ(attest_evidence_from_cert(&ev, nullptr, junk.data(), junk.size()),
              ATTEST_EVIDENCE_MALFORMED);
    auto cert = vec("virtee_milan_v2_vcek.der");
    cert.push_back(0);
    EXPECT_EQ(attest_evidence_from_cert(&ev, nullptr, cert.data(), cert.size()),
              ATTEST_EVIDENCE_MALFORMED);
    EXPECT_EQ(attest_evidence_from_cert(&ev, nullptr, nullptr, 0), ATTEST_EVIDENCE_MALFORMED);
}
