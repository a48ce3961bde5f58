// attest_p384_test: the table-based P-384 verifier (attest/attest_p384.c) must give exactly
// BoringSSL's ECDSA_do_verify answer: random keys and digests, valid and altered signatures,
// out-of-range scalars, and crafted signatures that drive the rare branches (P + P, P + (-P),
// x(R) >= n). Its field multiplication and reduction mod p must give BoringSSL's BN answers.
// Every test runs twice: with the portable C field code and with the BMI2/ADX assembly (skipped
// with a reason on a CPU or build without it).
#include <gtest/gtest.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "attest_internal.h"

namespace {

constexpr size_t kB = ATTEST_P384_BYTES;

struct BnFree {
    void operator()(BIGNUM *b) const { BN_free(b); }
};
struct KeyFree {
    void operator()(EC_KEY *k) const { EC_KEY_free(k); }
};
struct PointFree {
    void operator()(EC_POINT *p) const { EC_POINT_free(p); }
};
struct TableFree {
    void operator()(attest_p384_table *t) const { attest_p384_table_free(t); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;
using Key = std::unique_ptr<EC_KEY, KeyFree>;
using Point = std::unique_ptr<EC_POINT, PointFree>;
using Table = std::unique_ptr<attest_p384_table, TableFree>;

const EC_GROUP *Group() {
    static EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
    return g;
}

Bn NewBn(const BIGNUM *from = nullptr) { return Bn(from ? BN_dup(from) : BN_new()); }

void Be(uint8_t out[kB], const BIGNUM *b) { ASSERT_TRUE(BN_bn2bin_padded(out, kB, b)); }

// Sig: one signature in the byte form attest_p384_verify takes.
struct Sig {
    uint8_t digest[kB];
    uint8_t r[kB];
    uint8_t s[kB];
};

// P384, P384Field: the parameter picks the field code (true: the BMI2/ADX assembly) for the test,
// tables included; the default is put back afterwards.
class P384Code : public ::testing::TestWithParam<bool> {
  protected:
    void SetUp() override {
        if (!attest_p384_use_adx(GetParam())) {
            ASSERT_TRUE(GetParam()) << "the portable code can always be selected";
            GTEST_SKIP() << "this CPU or build has no BMI2/ADX field code";
        }
    }
    void TearDown() override { attest_p384_use_default_code(); }
};
class P384 : public P384Code {};
class P384Field : public P384Code {};

std::string CodeName(const ::testing::TestParamInfo<bool> &info) {
    return info.param ? "Adx" : "Portable";
}

Table FillTable(const EC_POINT *q) {
    Bn x = NewBn(), y = NewBn();
    EXPECT_TRUE(EC_POINT_get_affine_coordinates_GFp(Group(), q, x.get(), y.get(), nullptr));
    uint8_t xb[kB], yb[kB];
    Be(xb, x.get());
    Be(yb, y.get());
    Table t(attest_p384_table_new());
    EXPECT_NE(t, nullptr);
    EXPECT_TRUE(attest_p384_table_fill(t.get(), xb, yb));
    return t;
}

// BoringSslVerify: the reference answer.
bool BoringSslVerify(const EC_POINT *q, const Sig &sig) {
    Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
    EXPECT_TRUE(EC_KEY_set_public_key(key.get(), q));
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig.r, kB, nullptr), *s = BN_bin2bn(sig.s, kB, nullptr);
    EXPECT_TRUE(ECDSA_SIG_set0(es, r, s));
    bool ok = ECDSA_do_verify(sig.digest, kB, es, key.get()) == 1;
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return ok;
}

// ExpectSame: both verifiers agree on sig, and the agreed answer is want.
void ExpectSame(const attest_p384_table *t, const EC_POINT *q, const Sig &sig, bool want) {
    bool ours = attest_p384_verify(t, sig.digest, sig.r, sig.s);
    bool ref = BoringSslVerify(q, sig);
    EXPECT_EQ(ref, want);
    EXPECT_EQ(ours, ref);
}

Sig SignRandom(const EC_KEY *key) {
    Sig sig;
    RAND_bytes(sig.digest, kB);
    ECDSA_SIG *es = ECDSA_do_sign(sig.digest, kB, key);
    EXPECT_NE(es, nullptr);
    Be(sig.r, ECDSA_SIG_get0_r(es));
    Be(sig.s, ECDSA_SIG_get0_s(es));
    ECDSA_SIG_free(es);
    return sig;
}

Key KeyFromScalar(const BIGNUM *d) {
    Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
    Point q(EC_POINT_new(Group()));
    EXPECT_TRUE(EC_POINT_mul(Group(), q.get(), d, nullptr, nullptr, nullptr));
    EXPECT_TRUE(EC_KEY_set_private_key(key.get(), d));
    EXPECT_TRUE(EC_KEY_set_public_key(key.get(), q.get()));
    return key;
}

TEST_P(P384, RandomKeysAgreeWithBoringSslOnValidAndAlteredSignatures) {
    for (int k = 0; k < 12; k++) {
        Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
        ASSERT_TRUE(EC_KEY_generate_key(key.get()));
        const EC_POINT *q = EC_KEY_get0_public_key(key.get());
        Table t = FillTable(q);
        for (int m = 0; m < 8; m++) {
            Sig sig = SignRandom(key.get());
            ExpectSame(t.get(), q, sig, true);
            uint8_t pick[2];
            RAND_bytes(pick, sizeof(pick));
            uint8_t bit = (uint8_t)(1u << (pick[1] & 7));
            Sig bad = sig;
            bad.digest[pick[0] % kB] ^= bit;
            ExpectSame(t.get(), q, bad, false);
            bad = sig;
            bad.r[pick[0] % kB] ^= bit;
            ExpectSame(t.get(), q, bad, false);
            bad = sig;
            bad.s[pick[0] % kB] ^= bit;
            ExpectSame(t.get(), q, bad, false);
        }
    }
}

TEST_P(P384, SignatureOfAnotherKeyIsRefused) {
    Key a(EC_KEY_new_by_curve_name(NID_secp384r1)), b(EC_KEY_new_by_curve_name(NID_secp384r1));
    ASSERT_TRUE(EC_KEY_generate_key(a.get()));
    ASSERT_TRUE(EC_KEY_generate_key(b.get()));
    Table tb = FillTable(EC_KEY_get0_public_key(b.get()));
    for (int m = 0; m < 4; m++) {
        ExpectSame(tb.get(), EC_KEY_get0_public_key(b.get()), SignRandom(a.get()), false);
    }
}

TEST_P(P384, EdgeKeysVerify) {
    // d = 1 (Q = G), 2, n - 1 (Q = -G), n - 2: the G and Q tables hold the same or opposite
    // points, so the two digit sums meet.
    const BIGNUM *n = EC_GROUP_get0_order(Group());
    for (int which = 0; which < 4; which++) {
        Bn d = NewBn();
        if (which < 2) {
            ASSERT_TRUE(BN_set_word(d.get(), which + 1));
        } else {
            ASSERT_TRUE(BN_copy(d.get(), n));
            ASSERT_TRUE(BN_sub_word(d.get(), which - 1));
        }
        Key key = KeyFromScalar(d.get());
        const EC_POINT *q = EC_KEY_get0_public_key(key.get());
        Table t = FillTable(q);
        for (int m = 0; m < 4; m++) {
            Sig sig = SignRandom(key.get());
            ExpectSame(t.get(), q, sig, true);
            sig.s[kB - 1] ^= 1;
            ExpectSame(t.get(), q, sig, false);
        }
    }
}

TEST_P(P384, OutOfRangeScalarsAreRefused) {
    Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
    ASSERT_TRUE(EC_KEY_generate_key(key.get()));
    const EC_POINT *q = EC_KEY_get0_public_key(key.get());
    Table t = FillTable(q);
    Sig good = SignRandom(key.get());
    ASSERT_TRUE(attest_p384_verify(t.get(), good.digest, good.r, good.s));
    const BIGNUM *n = EC_GROUP_get0_order(Group());
    Bn np1 = NewBn(n);
    ASSERT_TRUE(BN_add_word(np1.get(), 1));
    uint8_t zero[kB] = {0}, ones[kB], nb[kB], np1b[kB];
    memset(ones, 0xFF, sizeof(ones));
    Be(nb, n);
    Be(np1b, np1.get());
    for (const uint8_t *bad : {zero, ones, nb, np1b}) {
        Sig sig = good;
        memcpy(sig.r, bad, kB);
        ExpectSame(t.get(), q, sig, false);
        sig = good;
        memcpy(sig.s, bad, kB);
        ExpectSame(t.get(), q, sig, false);
    }
    // r + n and s + n name the same residues but are out of range: refused.
    Bn r = Bn(BN_bin2bn(good.r, kB, nullptr));
    if (BN_add(r.get(), r.get(), n) && BN_num_bytes(r.get()) <= (int)kB) {
        Sig sig = good;
        Be(sig.r, r.get());
        EXPECT_FALSE(attest_p384_verify(t.get(), sig.digest, sig.r, sig.s));
    }
}

TEST_P(P384, DigestAboveTheOrderIsReducedLikeBoringSsl) {
    // A digest >= n is reduced mod n before use (SEC 1): sign e - n's residue, verify with e.
    Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
    ASSERT_TRUE(EC_KEY_generate_key(key.get()));
    const EC_POINT *q = EC_KEY_get0_public_key(key.get());
    Table t = FillTable(q);
    Sig sig;
    memset(sig.digest, 0xFF, kB); // 2^384 - 1 > n
    ECDSA_SIG *es = ECDSA_do_sign(sig.digest, kB, key.get());
    ASSERT_NE(es, nullptr);
    Be(sig.r, ECDSA_SIG_get0_r(es));
    Be(sig.s, ECDSA_SIG_get0_s(es));
    ECDSA_SIG_free(es);
    ExpectSame(t.get(), q, sig, true);
}

// Crafted: with the private key known, pick u1 and u2 and solve for (e, r, s):
// u1 = e/s, u2 = r/s, so e = u1 r / u2 and s = r / u2, where r = x(u1 G + u2 Q) mod n.
Sig Craft(const BIGNUM *d, uint64_t u1w, uint64_t u2w, bool *out_infinity) {
    const EC_GROUP *g = Group();
    const BIGNUM *n = EC_GROUP_get0_order(g);
    BN_CTX *ctx = BN_CTX_new();
    Bn u1 = NewBn(), u2 = NewBn(), k = NewBn(), x = NewBn(), r = NewBn(), s = NewBn(),
       e = NewBn(), inv = NewBn();
    EXPECT_TRUE(BN_set_word(u1.get(), u1w) && BN_set_word(u2.get(), u2w));
    // k = u1 + u2 d; R = k G.
    EXPECT_TRUE(BN_mod_mul(k.get(), u2.get(), d, n, ctx));
    EXPECT_TRUE(BN_mod_add(k.get(), k.get(), u1.get(), n, ctx));
    Sig sig{};
    *out_infinity = BN_is_zero(k.get());
    if (*out_infinity) {
        // Any r: take r = 1, so s = 1 / u2 and e = u1 / u2.
        EXPECT_TRUE(BN_one(r.get()));
    } else {
        Point rp(EC_POINT_new(g));
        EXPECT_TRUE(EC_POINT_mul(g, rp.get(), k.get(), nullptr, nullptr, ctx));
        EXPECT_TRUE(EC_POINT_get_affine_coordinates_GFp(g, rp.get(), x.get(), nullptr, ctx));
        EXPECT_TRUE(BN_nnmod(r.get(), x.get(), n, ctx));
    }
    EXPECT_NE(BN_mod_inverse(inv.get(), u2.get(), n, ctx), nullptr);
    EXPECT_TRUE(BN_mod_mul(s.get(), r.get(), inv.get(), n, ctx));
    EXPECT_TRUE(BN_mod_mul(e.get(), u1.get(), s.get(), n, ctx));
    Be(sig.digest, e.get());
    Be(sig.r, r.get());
    Be(sig.s, s.get());
    BN_CTX_free(ctx);
    return sig;
}

TEST_P(P384, SumsThatMeetDoubleOrCancel) {
    // Q = G, u1 = u2 = 5: the Q pass adds 5G to an accumulator holding 5G (the doubling branch).
    Bn one = NewBn();
    ASSERT_TRUE(BN_one(one.get()));
    Key kg = KeyFromScalar(one.get());
    const EC_POINT *g = EC_KEY_get0_public_key(kg.get());
    Table tg = FillTable(g);
    bool inf = false;
    for (uint64_t u : {1u, 5u, 16u, 17u, 31u, 33u}) {
        Sig sig = Craft(one.get(), u, u, &inf);
        ASSERT_FALSE(inf);
        ExpectSame(tg.get(), g, sig, true);
    }
    // Q = -G, u1 = u2: the sum is the point at infinity, which never verifies.
    Bn nm1 = NewBn(EC_GROUP_get0_order(Group()));
    ASSERT_TRUE(BN_sub_word(nm1.get(), 1));
    Key kn = KeyFromScalar(nm1.get());
    const EC_POINT *ng = EC_KEY_get0_public_key(kn.get());
    Table tn = FillTable(ng);
    for (uint64_t u : {1u, 5u, 16u, 33u, 1000u}) {
        Sig sig = Craft(nm1.get(), u, u, &inf);
        ASSERT_TRUE(inf);
        ExpectSame(tn.get(), ng, sig, false);
    }
    // Q = -G, u2 = u1 + 1: the sum is -G, reached through a cancellation on the way.
    for (uint64_t u : {1u, 5u, 15u}) {
        Sig sig = Craft(nm1.get(), u, u + 1, &inf);
        ASSERT_FALSE(inf);
        ExpectSame(tn.get(), ng, sig, true);
    }
}

TEST_P(P384, XCoordinateAboveTheOrderIsComparedModN) {
    // A point R with x(R) in [n, p): take Q = R, e = 0, s = r = x(R) - n. Then u1 = 0, u2 = 1
    // and the sum is R, whose x is r + n, not r: the r + n branch must accept it.
    const EC_GROUP *g = Group();
    const BIGNUM *n = EC_GROUP_get0_order(g);
    BN_CTX *ctx = BN_CTX_new();
    Bn x = NewBn(n);
    Point r(EC_POINT_new(g));
    bool found = false;
    for (int i = 0; i < 64 && !found; i++) {
        ASSERT_TRUE(BN_add_word(x.get(), 1));
        found = EC_POINT_set_compressed_coordinates_GFp(g, r.get(), x.get(), 0, ctx) == 1;
        ERR_clear_error();
    }
    ASSERT_TRUE(found);
    Table t = FillTable(r.get());
    Bn rr = NewBn();
    ASSERT_TRUE(BN_sub(rr.get(), x.get(), n));
    Sig sig{};
    Be(sig.r, rr.get());
    Be(sig.s, rr.get());
    ExpectSame(t.get(), r.get(), sig, true);
    // The same with r = x(R) itself is out of range (>= n).
    Be(sig.r, x.get());
    ExpectSame(t.get(), r.get(), sig, false);
    BN_CTX_free(ctx);
}

TEST_P(P384, PointsOffTheCurveAreRefused) {
    Key key(EC_KEY_new_by_curve_name(NID_secp384r1));
    ASSERT_TRUE(EC_KEY_generate_key(key.get()));
    Bn x = NewBn(), y = NewBn();
    ASSERT_TRUE(EC_POINT_get_affine_coordinates_GFp(Group(), EC_KEY_get0_public_key(key.get()),
                                                    x.get(), y.get(), nullptr));
    uint8_t xb[kB], yb[kB];
    Be(xb, x.get());
    Be(yb, y.get());
    Table t(attest_p384_table_new());
    ASSERT_NE(t, nullptr);
    ASSERT_TRUE(attest_p384_table_fill(t.get(), xb, yb));
    yb[kB - 1] ^= 1;
    EXPECT_FALSE(attest_p384_table_fill(t.get(), xb, yb));
    uint8_t ones[kB];
    memset(ones, 0xFF, sizeof(ones)); // >= p
    EXPECT_FALSE(attest_p384_table_fill(t.get(), ones, yb));
    EXPECT_FALSE(attest_p384_table_fill(t.get(), xb, ones));
}

// ---- the field arithmetic (multiplication, squaring, reduction mod p) ----------------------

const BIGNUM *P() {
    static BIGNUM *p = [] {
        BIGNUM *v = BN_new();
        EXPECT_TRUE(EC_GROUP_get_curve_GFp(Group(), v, nullptr, nullptr, nullptr));
        return v;
    }();
    return p;
}

// ExpectFieldMul: attest_p384_field_mul(a, b) and (a, a) via the squaring entry give BoringSSL's
// BN_mod_mul.
void ExpectFieldMul(const BIGNUM *a, const BIGNUM *b) {
    uint8_t ab[kB], bb[kB], got[kB], want[kB];
    Be(ab, a);
    Be(bb, b);
    BN_CTX *ctx = BN_CTX_new();
    Bn r = NewBn();
    ASSERT_TRUE(BN_mod_mul(r.get(), a, b, P(), ctx));
    Be(want, r.get());
    ASSERT_TRUE(attest_p384_field_mul(got, ab, bb));
    EXPECT_EQ(0, memcmp(got, want, kB)) << "a=" << BN_bn2hex(a) << " b=" << BN_bn2hex(b);
    ASSERT_TRUE(BN_mod_mul(r.get(), a, a, P(), ctx));
    Be(want, r.get());
    ASSERT_TRUE(attest_p384_field_mul(got, ab, nullptr));
    EXPECT_EQ(0, memcmp(got, want, kB)) << "a^2, a=" << BN_bn2hex(a);
    BN_CTX_free(ctx);
}

// FieldEdges: values where limbs are all zeros or all ones, next to p, 2^383, d = 2^384 - p and
// the powers of two p is made of.
std::vector<Bn> FieldEdges() {
    std::vector<Bn> v;
    auto add_pow = [&](int bits, long delta) {
        Bn x = NewBn();
        EXPECT_TRUE(BN_set_bit(x.get(), bits));
        if (delta >= 0) {
            EXPECT_TRUE(BN_add_word(x.get(), (BN_ULONG)delta));
        } else {
            EXPECT_TRUE(BN_sub_word(x.get(), (BN_ULONG)-delta));
        }
        v.push_back(std::move(x));
    };
    for (long k = 0; k < 3; k++) {
        Bn x = NewBn();
        EXPECT_TRUE(BN_set_word(x.get(), (BN_ULONG)k));
        v.push_back(std::move(x));
    }
    for (int bits : {32, 64, 96, 128, 192, 256, 320, 383}) {
        add_pow(bits, -1);
        add_pow(bits, 0);
        add_pow(bits, 1);
    }
    for (BN_ULONG k : {BN_ULONG{1}, BN_ULONG{2}, BN_ULONG{3}, BN_ULONG{0xffffffffu}}) { // p - k
        Bn x = NewBn(P());
        EXPECT_TRUE(BN_sub_word(x.get(), k));
        v.push_back(std::move(x));
    }
    Bn d = NewBn(), top = NewBn(); // d = 2^384 - p; top = 2^384 - 2^320 (top word all ones)
    EXPECT_TRUE(BN_set_bit(d.get(), 384));
    EXPECT_TRUE(BN_sub(d.get(), d.get(), P()));
    EXPECT_TRUE(BN_set_bit(top.get(), 384));
    Bn low = NewBn();
    EXPECT_TRUE(BN_set_bit(low.get(), 320));
    EXPECT_TRUE(BN_sub(top.get(), top.get(), low.get()));
    Bn p_minus_d = NewBn(P());
    EXPECT_TRUE(BN_sub(p_minus_d.get(), p_minus_d.get(), d.get()));
    v.push_back(std::move(d));
    v.push_back(std::move(top));
    v.push_back(std::move(p_minus_d));
    for (const Bn &x : v) {
        EXPECT_LT(BN_cmp(x.get(), P()), 0);
    }
    return v;
}

TEST_P(P384Field, EdgeValuesMultiplyAndSquareLikeBoringSsl) {
    std::vector<Bn> edges = FieldEdges();
    for (const Bn &a : edges) {
        for (const Bn &b : edges) {
            ExpectFieldMul(a.get(), b.get());
        }
    }
}

TEST_P(P384Field, RandomAndNearPValuesMultiplyLikeBoringSsl) {
    Bn a = NewBn(), b = NewBn(), gap = NewBn(), bound = NewBn();
    ASSERT_TRUE(BN_set_bit(bound.get(), 64));
    for (int i = 0; i < 4000; i++) {
        ASSERT_TRUE(BN_rand_range(a.get(), P()));
        ASSERT_TRUE(BN_rand_range(b.get(), P()));
        if (i % 2 == 1) { // a within 2^64 below p
            ASSERT_TRUE(BN_rand_range(gap.get(), bound.get()));
            ASSERT_TRUE(BN_sub(a.get(), P(), gap.get()));
            ASSERT_TRUE(BN_sub_word(a.get(), 1));
        }
        ExpectFieldMul(a.get(), b.get());
    }
}

TEST_P(P384Field, OperandsNotBelowPAreRefused) {
    uint8_t pb[kB], one[kB] = {0}, ones[kB], out[kB];
    Be(pb, P());
    one[kB - 1] = 1;
    memset(ones, 0xFF, sizeof(ones));
    EXPECT_FALSE(attest_p384_field_mul(out, pb, one));
    EXPECT_FALSE(attest_p384_field_mul(out, one, pb));
    EXPECT_FALSE(attest_p384_field_mul(out, ones, nullptr));
    EXPECT_TRUE(attest_p384_field_mul(out, one, one));
}

// ExpectReduce: attest_p384_field_reduce(t) is t mod p.
void ExpectReduce(const BIGNUM *t) {
    uint8_t tb[2 * kB], got[kB], want[kB];
    ASSERT_TRUE(BN_bn2bin_padded(tb, sizeof(tb), t));
    BN_CTX *ctx = BN_CTX_new();
    Bn r = NewBn();
    ASSERT_TRUE(BN_nnmod(r.get(), t, P(), ctx));
    BN_CTX_free(ctx);
    Be(want, r.get());
    attest_p384_field_reduce(got, tb);
    EXPECT_EQ(0, memcmp(got, want, kB)) << "t=" << BN_bn2hex(t);
}

// The reduction folds t's high half in as h * d, then the bits above 384 of that once more. The
// second fold carries past 2^384 only when the low 384 bits of the first are within g * d of
// 2^384 (g: the bits above); no product of random values comes near, so those t are built.
TEST_P(P384Field, ReductionOfWideValuesIncludingTheSecondFoldsCarry) {
    Bn two384 = NewBn(), d = NewBn(), all = NewBn();
    ASSERT_TRUE(BN_set_bit(two384.get(), 384));
    ASSERT_TRUE(BN_sub(d.get(), two384.get(), P()));
    ASSERT_TRUE(BN_set_bit(all.get(), 768));
    ASSERT_TRUE(BN_sub_word(all.get(), 1)); // 2^768 - 1, the largest input
    ExpectReduce(all.get());
    BN_CTX *ctx = BN_CTX_new();
    Bn h = NewBn(), hd = NewBn(), l = NewBn(), t = NewBn(), g = NewBn(), rem = NewBn();
    for (int i = 0; i < 2000; i++) {
        // t = l + 2^384 h: h random below 2^384; l chosen so that (l + h d) mod 2^384 is
        // 2^384 - 1 - k for a small k, i.e. the first fold's low part is just under 2^384.
        ASSERT_TRUE(BN_rand(h.get(), 384, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY));
        ASSERT_TRUE(BN_mul(hd.get(), h.get(), d.get(), ctx));
        ASSERT_TRUE(BN_div(g.get(), rem.get(), hd.get(), two384.get(), ctx)); // hd = g 2^384 + rem
        ASSERT_TRUE(BN_sub(l.get(), two384.get(), rem.get()));
        ASSERT_TRUE(BN_sub_word(l.get(), 1 + (BN_ULONG)(i % 16)));
        ASSERT_TRUE(BN_nnmod(l.get(), l.get(), two384.get(), ctx));
        ASSERT_TRUE(BN_lshift(t.get(), h.get(), 384));
        ASSERT_TRUE(BN_add(t.get(), t.get(), l.get()));
        ExpectReduce(t.get());
        // And a random t of up to 768 bits.
        ASSERT_TRUE(BN_rand(t.get(), 1 + i % 768, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY));
        ExpectReduce(t.get());
    }
    BN_CTX_free(ctx);
}

// ---- the scalar inversion mod n ------------------------------------------------------------

// ExpectScalarInv: attest_p384_scalar_inv(a) is BoringSSL's BN_mod_inverse(a, n).
void ExpectScalarInv(const BIGNUM *a) {
    const BIGNUM *n = EC_GROUP_get0_order(Group());
    uint8_t ab[kB], got[kB], want[kB];
    Be(ab, a);
    BN_CTX *ctx = BN_CTX_new();
    Bn r = NewBn();
    ASSERT_NE(BN_mod_inverse(r.get(), a, n, ctx), nullptr);
    BN_CTX_free(ctx);
    Be(want, r.get());
    ASSERT_TRUE(attest_p384_scalar_inv(got, ab));
    EXPECT_EQ(0, memcmp(got, want, kB)) << "a=" << BN_bn2hex(a);
}

TEST(P384Scalar, InverseOfEdgeAndRandomValuesIsBoringSsls) {
    const BIGNUM *n = EC_GROUP_get0_order(Group());
    Bn a = NewBn();
    // Small values, n - k, and powers of two (long runs of zeros, all stripped at once or in
    // several 63-bit steps), and 2^k - 1 (long runs of ones).
    for (BN_ULONG k : {BN_ULONG{1}, BN_ULONG{2}, BN_ULONG{3}, BN_ULONG{4}, BN_ULONG{0xffffffffu}}) {
        ASSERT_TRUE(BN_set_word(a.get(), k));
        ExpectScalarInv(a.get());
        ASSERT_TRUE(BN_copy(a.get(), n));
        ASSERT_TRUE(BN_sub_word(a.get(), k));
        ExpectScalarInv(a.get());
    }
    for (int bits : {1, 62, 63, 64, 65, 127, 128, 200, 383}) {
        BN_zero(a.get());
        ASSERT_TRUE(BN_set_bit(a.get(), bits));
        ExpectScalarInv(a.get());
        ASSERT_TRUE(BN_sub_word(a.get(), 1));
        ExpectScalarInv(a.get());
    }
    for (int i = 0; i < 2000; i++) {
        do {
            ASSERT_TRUE(BN_rand_range(a.get(), n));
        } while (BN_is_zero(a.get()));
        ExpectScalarInv(a.get());
    }
}

TEST(P384Scalar, ZeroAndValuesNotBelowTheOrderAreRefused) {
    const BIGNUM *n = EC_GROUP_get0_order(Group());
    uint8_t zero[kB] = {0}, nb[kB], ones[kB], out[kB];
    Be(nb, n);
    memset(ones, 0xFF, sizeof(ones));
    EXPECT_FALSE(attest_p384_scalar_inv(out, zero));
    EXPECT_FALSE(attest_p384_scalar_inv(out, nb));
    EXPECT_FALSE(attest_p384_scalar_inv(out, ones));
}

INSTANTIATE_TEST_SUITE_P(Code, P384, ::testing::Bool(), CodeName);
INSTANTIATE_TEST_SUITE_P(Code, P384Field, ::testing::Bool(), CodeName);

} // namespace
