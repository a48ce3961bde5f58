// attest_p384.c: ECDSA P-384 signature verification with fixed-base tables.
//
// Why this exists: every attested handshake verifies one report signature with the VCEK's P-384
// key. This BoringSSL build computes P-384 with its generic Montgomery code, ~0.45-0.55 ms per
// verification on the bench machine, about half of an attested handshake's CPU. But a gateway
// sees the same few VCEKs over and over (one per host and TCB), so the verifier precomputes, once
// per key, the multiples j * 2^(w i) * Q (w = ATTEST_P384_WIN_BITS, j = 1..2^(w-1), i over the
// 384 bits) in affine form, and holds the same table for G. A verification is then u1*G + u2*Q
// as at most 2 * ceil(385 / w) mixed additions (110 for w = 7) and no doublings.
//
// Field elements mod p are kept in plain form and multiplied with a reduction that uses p's shape
// (p = 2^384 - d, d = 2^128 + 2^96 - 2^32 + 1): the high half of a product is folded in twice as
// h * d, which is shifts and additions, no multiplications. On x86-64 CPUs with BMI2 and ADX (read
// from CPUID once) the multiplication runs attest_p384_x86_64.S instead, the same arithmetic
// ~1.5x faster; the C code below is the reference and the fallback. Scalars mod n use Montgomery
// multiplication.
//
// Only public data is handled (the report, the signature, the VCEK's public key), so the code is
// variable-time on purpose. Correctness is the whole contract: tests/attest/attest_p384_test.cc
// (each test with the C and with the assembly field code) compares every result with BoringSSL's
// ECDSA_do_verify on random keys, valid and altered signatures and the edge scalars, the field
// multiplication and reduction with BN_mod_mul and BN_nnmod on edge, random and built values,
// and the scalar inversion with BN_mod_inverse. The curve constants typed in here are checked
// against BoringSSL's P-384 group once, before first use.
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/nid.h>

#include "attest_internal.h"
#include "core_base.h"

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

#define LIMBS 6u                                   // 6 x 64 bits = 384
#define WIN_BITS ATTEST_P384_WIN_BITS             // signed digits in [-2^(w-1), 2^(w-1)]
#define WIN_POINTS (1u << (WIN_BITS - 1))          // table entries per window: 1..2^(w-1)
#define WINDOWS ((385u + WIN_BITS - 1) / WIN_BITS) // 384 bits and a final carry
#define BUILD_CHUNK_POINTS 128u                    // points normalized with one inversion

_Static_assert(WIN_BITS >= 2 && WIN_BITS <= 8, "digits are int16_t; a window spans <= 2 limbs");
_Static_assert(BUILD_CHUNK_POINTS % WIN_POINTS == 0, "a chunk holds whole windows");

// struct modulus: an odd 384-bit modulus with its Montgomery constants (R = 2^384).
struct modulus {
    uint64_t m[LIMBS];
    uint64_t m0inv;        // -m^-1 mod 2^64
    uint64_t rr[LIMBS];    // R^2 mod m
    uint64_t one[LIMBS];   // R mod m: 1 in Montgomery form
};

// struct jac: a point in Jacobian coordinates (x = X/Z^2, y = Y/Z^3), coordinates mod p.
// Z = 0 is the point at infinity.
struct jac {
    uint64_t x[LIMBS], y[LIMBS], z[LIMBS];
};

// struct affine: a point (x, y) mod p; never infinity.
struct affine {
    uint64_t x[LIMBS], y[LIMBS];
};

struct attest_p384_table {
    struct affine t[WINDOWS][WIN_POINTS];
};

// P-384's p and n, n with its Montgomery constants, as constants so that the multiplication
// loops see them; init_tables recomputes them from BoringSSL's group and refuses to run (callers
// fall back to BoringSSL) if one differs. Only m is used of mod_p: field elements are plain.
static const struct modulus mod_p = {
    .m = {0x00000000ffffffffu, 0xffffffff00000000u, 0xfffffffffffffffeu, 0xffffffffffffffffu,
          0xffffffffffffffffu, 0xffffffffffffffffu},
};
// d = 2^384 - p = 2^128 + 2^96 - 2^32 + 1; fe_reduce relies on this shape.
static const uint64_t p_d[LIMBS] = {0xffffffff00000001u, 0x00000000ffffffffu, 1u, 0, 0, 0};
static const uint64_t fe_one[LIMBS] = {1u};
static const struct modulus mod_n = {
    .m = {0xecec196accc52973u, 0x581a0db248b0a77au, 0xc7634d81f4372ddfu, 0xffffffffffffffffu,
          0xffffffffffffffffu, 0xffffffffffffffffu},
    .m0inv = 0x6ed46089e88fdc45u,
    .rr = {0x2d319b2419b409a9u, 0xff3d81e5df1aa419u, 0xbc3e483afcb82947u, 0xd40d49174aab1cc5u,
           0x3fb05b7a28266895u, 0x0c84ee012b39bf21u},
    .one = {0x1313e695333ad68du, 0xa7e5f24db74f5885u, 0x389cb27e0bc8d220u, 0, 0, 0},
};
static uint64_t curve_b[LIMBS];  // b
static uint64_t p_minus_n[LIMBS]; // r + n < p iff r < p - n
static struct attest_p384_table g_table;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;
static atomic_bool use_adx; // from CPUID (attest_p384_use_default_code); tests may switch

#if ATTEST_P384_ADX
// attest_p384_x86_64.S: out = a * b mod p, and out = t mod p (t < 2^768), with mulx/adcx/adox.
void attest_p384_mul_adx(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS]);
void attest_p384_reduce_adx(uint64_t out[LIMBS], const uint64_t t[2 * LIMBS]);

#include <cpuid.h>

static bool cpu_has_adx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        return false;
    }
    return (b & bit_BMI2) != 0 && (b & bit_ADX) != 0;
}
#else
static bool cpu_has_adx(void) {
    return false;
}
#endif

// ---- 384-bit integers -------------------------------------------------------------------------

static void from_be(uint64_t out[LIMBS], const uint8_t in[ATTEST_P384_BYTES]) {
    for (size_t i = 0; i < LIMBS; i++) {
        uint64_t w = 0;
        for (size_t b = 0; b < 8; b++) {
            w = (w << 8) | in[ATTEST_P384_BYTES - 8 * (i + 1) + b];
        }
        out[i] = w;
    }
}

static bool is_zero(const uint64_t a[LIMBS]) {
    uint64_t acc = 0;
    for (size_t i = 0; i < LIMBS; i++) {
        acc |= a[i];
    }
    return acc == 0;
}

static bool is_equal(const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
    return memcmp(a, b, LIMBS * sizeof(uint64_t)) == 0;
}

// is_less: a < b as unsigned 384-bit integers.
static bool is_less(const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
    for (size_t i = LIMBS; i-- > 0;) {
        if (a[i] != b[i]) {
            return a[i] < b[i];
        }
    }
    return false;
}

// sub_raw: out = a - b; returns the borrow.
static inline uint64_t sub_raw(uint64_t out[LIMBS], const uint64_t a[LIMBS],
                               const uint64_t b[LIMBS]) {
    uint64_t borrow = 0;
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        u128 d = (u128)a[i] - b[i] - borrow;
        out[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1u;
    }
    return borrow;
}

// add_raw: out = a + b; returns the carry.
static inline uint64_t add_raw(uint64_t out[LIMBS], const uint64_t a[LIMBS],
                               const uint64_t b[LIMBS]) {
    uint64_t carry = 0;
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        u128 sum = (u128)a[i] + b[i] + carry;
        out[i] = (uint64_t)sum;
        carry = (uint64_t)(sum >> 64);
    }
    return carry;
}

// ---- arithmetic modulo m (inputs and outputs in [0, m)) ---------------------------------------

static inline void mod_add(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS],
                           const struct modulus *md) {
    uint64_t t[LIMBS];
    uint64_t carry = add_raw(t, a, b);
    uint64_t d[LIMBS];
    uint64_t borrow = sub_raw(d, t, md->m);
    bool take_d = carry != 0 || borrow == 0;
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        out[i] = take_d ? d[i] : t[i];
    }
}

static inline void mod_sub(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS],
                           const struct modulus *md) {
    if (sub_raw(out, a, b) != 0) {
        add_raw(out, out, md->m);
    }
}

// mont_mul: out = a * b / R mod m (CIOS). Inlined into sc_mul so that the modulus words are
// constants of the loop.
static inline __attribute__((always_inline)) void mont_mul(uint64_t out[LIMBS],
                                                           const uint64_t a[LIMBS],
                                                           const uint64_t b[LIMBS],
                                                           const struct modulus *md) {
    uint64_t t[LIMBS + 2] = {0};
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        u128 c = 0;
#pragma GCC unroll 6
        for (size_t j = 0; j < LIMBS; j++) {
            c += (u128)a[j] * b[i] + t[j];
            t[j] = (uint64_t)c;
            c >>= 64;
        }
        c += t[LIMBS];
        t[LIMBS] = (uint64_t)c;
        t[LIMBS + 1] = (uint64_t)(c >> 64);
        uint64_t q = t[0] * md->m0inv;
        c = ((u128)q * md->m[0] + t[0]) >> 64;
#pragma GCC unroll 6
        for (size_t j = 1; j < LIMBS; j++) {
            c += (u128)q * md->m[j] + t[j];
            t[j - 1] = (uint64_t)c;
            c >>= 64;
        }
        c += t[LIMBS];
        t[LIMBS - 1] = (uint64_t)c;
        t[LIMBS] = t[LIMBS + 1] + (uint64_t)(c >> 64);
    }
    // t < 2m: one conditional subtraction.
    uint64_t d[LIMBS];
    uint64_t borrow = sub_raw(d, t, md->m);
    memcpy(out, (t[LIMBS] != 0 || borrow == 0) ? d : t, LIMBS * sizeof(uint64_t));
}

// mul_wide: t = a * b (12 limbs), column by column (product scanning) into a three-word
// accumulator. Squares use it as well: a separate squaring (cross products once, doubled) was
// slower here in a micro-benchmark, as was the row-by-row product.
static inline void mul_wide(uint64_t t[2 * LIMBS], const uint64_t a[LIMBS],
                            const uint64_t b[LIMBS]) {
    uint64_t c0 = 0, c1 = 0, c2 = 0;
#pragma GCC unroll 11
    for (size_t k = 0; k < 2 * LIMBS - 1; k++) {
        size_t lo = k < LIMBS ? 0 : k - (LIMBS - 1), hi = k < LIMBS ? k : LIMBS - 1;
#pragma GCC unroll 6
        for (size_t i = lo; i <= hi; i++) {
            u128 p = (u128)a[i] * b[k - i];
            u128 sum = ((u128)c1 << 64 | c0) + p;
            c2 += sum < p; // carry out of the two low words
            c0 = (uint64_t)sum;
            c1 = (uint64_t)(sum >> 64);
        }
        t[k] = c0;
        c0 = c1;
        c1 = c2;
        c2 = 0;
    }
    t[2 * LIMBS - 1] = c0;
}

// fe_reduce: out = t mod p, for any t < 2^768. With t = l + 2^384 h and 2^384 = d (mod p):
// t = l + h d = l + h - (h << 32) + (h << 96) + (h << 128), below 2^514 as d < 2^129. The same
// fold of that value's bits above 384 (fewer than 130) leaves less than 2^384 + 2^259; a carry
// out of 2^384 is folded as + d, and one subtraction of p ends below p.
static inline void fe_reduce(uint64_t out[LIMBS], const uint64_t t[2 * LIMBS]) {
    const uint64_t *h = t + LIMBS;
    uint64_t hs[LIMBS + 1]; // h << 32
    hs[0] = h[0] << 32;
#pragma GCC unroll 6
    for (size_t i = 1; i < LIMBS; i++) {
        hs[i] = (h[i] << 32) | (h[i - 1] >> 32);
    }
    hs[LIMBS] = h[LIMBS - 1] >> 32;
    uint64_t r[LIMBS + 3];
    i128 acc = 0; // terms of one limb; the sum stays far inside 127 bits, signed
#pragma GCC unroll 9
    for (size_t k = 0; k < LIMBS + 3; k++) {
        if (k < LIMBS) {
            acc += (i128)t[k] + h[k];
        }
        if (k <= LIMBS) {
            acc -= hs[k];
        }
        if (k >= 1 && k <= LIMBS + 1) {
            acc += hs[k - 1];
        }
        if (k >= 2 && k < LIMBS + 2) {
            acc += h[k - 2];
        }
        r[k] = (uint64_t)acc;
        acc >>= 64; // arithmetic shift: a negative limb sum borrows from the next
    }
    ASSERT_HOT(acc == 0 && r[LIMBS + 2] < 4u);
    // Second fold of g = r[6..8] (< 2^130).
    const uint64_t *g = r + LIMBS;
    uint64_t gs[4] = {g[0] << 32, (g[1] << 32) | (g[0] >> 32), (g[2] << 32) | (g[1] >> 32),
                      g[2] >> 32};
    acc = 0;
#pragma GCC unroll 6
    for (size_t k = 0; k < LIMBS; k++) {
        acc += r[k];
        if (k < 3) {
            acc += g[k];
        }
        if (k < 4) {
            acc -= gs[k];
        }
        if (k >= 1 && k <= 4) {
            acc += gs[k - 1];
        }
        if (k >= 2 && k <= 4) {
            acc += g[k - 2];
        }
        out[k] = (uint64_t)acc;
        acc >>= 64;
    }
    ASSERT_HOT(acc == 0 || acc == 1);
    if (acc != 0) {
        add_raw(out, out, p_d); // out + 2^384 = out + d (mod p); out < 2^259, so no carry
    }
    uint64_t d[LIMBS];
    if (sub_raw(d, out, mod_p.m) == 0) {
        memcpy(out, d, sizeof(d));
    }
}

static void fe_mul(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
#if ATTEST_P384_ADX
    if (atomic_load_explicit(&use_adx, memory_order_relaxed)) {
        attest_p384_mul_adx(out, a, b);
        return;
    }
#endif
    uint64_t t[2 * LIMBS];
    mul_wide(t, a, b);
    fe_reduce(out, t);
}

static void fe_sqr(uint64_t out[LIMBS], const uint64_t a[LIMBS]) {
    fe_mul(out, a, a);
}

static void fe_add(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
    mod_add(out, a, b, &mod_p);
}

static void fe_sub(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
    mod_sub(out, a, b, &mod_p);
}

static void sc_mul(uint64_t out[LIMBS], const uint64_t a[LIMBS], const uint64_t b[LIMBS]) {
    mont_mul(out, a, b, &mod_n);
}

// fe_inv: out = a^(p-2) = a^-1 mod p; 4-bit windows. Only the table build inverts field
// elements (once per chunk of points).
static void fe_inv(uint64_t out[LIMBS], const uint64_t a[LIMBS]) {
    uint64_t e[LIMBS]; // p - 2: p's lowest word is odd and above 2, so no borrow
    memcpy(e, mod_p.m, sizeof(e));
    e[0] -= 2;
    uint64_t pow[16][LIMBS];
    memcpy(pow[0], fe_one, sizeof(pow[0]));
    memcpy(pow[1], a, sizeof(pow[1]));
    for (size_t i = 2; i < 16; i++) {
        fe_mul(pow[i], pow[i - 1], a);
    }
    uint64_t acc[LIMBS];
    memcpy(acc, fe_one, sizeof(acc));
    for (size_t nib = LIMBS * 16; nib-- > 0;) {
        for (size_t k = 0; k < 4; k++) {
            fe_sqr(acc, acc);
        }
        unsigned d = (unsigned)(e[nib / 16] >> (4 * (nib % 16))) & 15u;
        if (d != 0) {
            fe_mul(acc, acc, pow[d]);
        }
    }
    memcpy(out, acc, sizeof(acc));
}

// div_pow2_mod_n: x = x / 2^k mod n for x < n and 1 <= k <= 63. Adds the multiple j n, j < 2^k,
// that makes x + j n divisible by 2^k (j = x (-n^-1) mod 2^k, from the Montgomery constant) and
// shifts; x + j n < 2^k n, so the result is below n.
static void div_pow2_mod_n(uint64_t x[LIMBS], unsigned k) {
    uint64_t j = (x[0] * mod_n.m0inv) & ((UINT64_C(1) << k) - 1);
    uint64_t y[LIMBS + 1];
    u128 acc = 0;
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        acc += (u128)j * mod_n.m[i] + x[i];
        y[i] = (uint64_t)acc;
        acc >>= 64;
    }
    y[LIMBS] = (uint64_t)acc;
    ASSERT_HOT((y[0] & ((UINT64_C(1) << k) - 1)) == 0);
#pragma GCC unroll 6
    for (size_t i = 0; i < LIMBS; i++) {
        x[i] = (y[i] >> k) | (y[i + 1] << (64 - k));
    }
    ASSERT_HOT((y[LIMBS] >> k) == 0 && is_less(x, mod_n.m));
}

// strip_twos: while u is even, u /= 2^k and x /= 2^k mod n, k the trailing zeros (at most 63
// at a time). u != 0.
static void strip_twos(uint64_t u[LIMBS], uint64_t x[LIMBS]) {
    ASSERT(!is_zero(u));
    while ((u[0] & 1u) == 0) {
        unsigned k = u[0] != 0 ? (unsigned)__builtin_ctzll(u[0]) : 63u;
#pragma GCC unroll 6
        for (size_t i = 0; i < LIMBS - 1; i++) {
            u[i] = (u[i] >> k) | (u[i + 1] << (64 - k));
        }
        u[LIMBS - 1] >>= k;
        div_pow2_mod_n(x, k);
    }
}

static bool is_one(const uint64_t a[LIMBS]) {
    return a[0] == 1u && (a[1] | a[2] | a[3] | a[4] | a[5]) == 0;
}

// sc_inv: out = a^-1 mod n for 0 < a < n, normal form. Binary extended Euclid, variable-time:
// only public values (the signature's s) are inverted. Invariants: x1 a = u, x2 a = v (mod n).
// The factors of two are taken out several at a time (strip_twos).
static void sc_inv(uint64_t out[LIMBS], const uint64_t a[LIMBS]) {
    uint64_t u[LIMBS], v[LIMBS], x1[LIMBS] = {1}, x2[LIMBS] = {0};
    memcpy(u, a, sizeof(u));
    memcpy(v, mod_n.m, sizeof(v));
    // Each step removes at least one bit from u or v: 2 * 384 steps at most.
    for (size_t step = 0; step < 2 * 384 + 2 && !is_one(u) && !is_one(v); step++) {
        strip_twos(u, x1);
        strip_twos(v, x2);
        if (!is_less(u, v)) {
            sub_raw(u, u, v);
            mod_sub(x1, x1, x2, &mod_n);
        } else {
            sub_raw(v, v, u);
            mod_sub(x2, x2, x1, &mod_n);
        }
    }
    ASSERT(is_one(u) || is_one(v)); // n is prime and 0 < a < n
    memcpy(out, is_one(u) ? x1 : x2, sizeof(x1));
}

// ---- points -----------------------------------------------------------------------------------

// jac_dbl: out = 2 * a for a = -3 ("dbl-2001-b", 3M + 5S). Infinity stays infinity.
static void jac_dbl(struct jac *out, const struct jac *a) {
    uint64_t delta[LIMBS], gamma[LIMBS], beta[LIMBS], alpha[LIMBS], t0[LIMBS], t1[LIMBS];
    fe_sqr(delta, a->z);
    fe_sqr(gamma, a->y);
    fe_mul(beta, a->x, gamma);
    fe_sub(t0, a->x, delta);
    fe_add(t1, a->x, delta);
    fe_mul(alpha, t0, t1);
    fe_add(t0, alpha, alpha);
    fe_add(alpha, t0, alpha); // 3 (x - delta)(x + delta)
    // Z3 = (Y + Z)^2 - gamma - delta, before out->y / out->z may alias a.
    fe_add(t0, a->y, a->z);
    fe_sqr(t0, t0);
    fe_sub(t0, t0, gamma);
    fe_sub(out->z, t0, delta);
    // X3 = alpha^2 - 8 beta
    fe_add(beta, beta, beta);
    fe_add(beta, beta, beta); // 4 beta
    fe_sqr(t0, alpha);
    fe_add(t1, beta, beta);
    fe_sub(out->x, t0, t1);
    // Y3 = alpha (4 beta - X3) - 8 gamma^2
    fe_sub(t0, beta, out->x);
    fe_mul(t0, alpha, t0);
    fe_sqr(t1, gamma);
    fe_add(t1, t1, t1);
    fe_add(t1, t1, t1);
    fe_add(t1, t1, t1);
    fe_sub(out->y, t0, t1);
}

// jac_add: acc += b, both Jacobian ("add-2007-bl"); handles infinity, P + P and P + (-P).
static void jac_add(struct jac *acc, const struct jac *b) {
    if (is_zero(b->z)) {
        return;
    }
    if (is_zero(acc->z)) {
        *acc = *b;
        return;
    }
    uint64_t z1z1[LIMBS], z2z2[LIMBS], u1[LIMBS], u2[LIMBS], s1[LIMBS], s2[LIMBS];
    uint64_t h[LIMBS], r[LIMBS], i[LIMBS], j[LIMBS], v[LIMBS], t[LIMBS];
    fe_sqr(z1z1, acc->z);
    fe_sqr(z2z2, b->z);
    fe_mul(u1, acc->x, z2z2);
    fe_mul(u2, b->x, z1z1);
    fe_mul(s1, acc->y, b->z);
    fe_mul(s1, s1, z2z2);
    fe_mul(s2, b->y, acc->z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, u1);
    fe_sub(r, s2, s1);
    if (is_zero(h)) {
        if (is_zero(r)) {
            jac_dbl(acc, acc);
        } else {
            memset(acc, 0, sizeof(*acc));
        }
        return;
    }
    fe_add(r, r, r);
    fe_add(i, h, h);
    fe_sqr(i, i);
    fe_mul(j, h, i);
    fe_mul(v, u1, i);
    // Z3 = ((Z1 + Z2)^2 - Z1Z1 - Z2Z2) H
    fe_add(t, acc->z, b->z);
    fe_sqr(t, t);
    fe_sub(t, t, z1z1);
    fe_sub(t, t, z2z2);
    fe_mul(acc->z, t, h);
    // X3 = r^2 - J - 2V
    fe_sqr(t, r);
    fe_sub(t, t, j);
    fe_sub(t, t, v);
    fe_sub(acc->x, t, v);
    // Y3 = r (V - X3) - 2 S1 J
    fe_sub(t, v, acc->x);
    fe_mul(t, r, t);
    fe_mul(s1, s1, j);
    fe_add(s1, s1, s1);
    fe_sub(acc->y, t, s1);
}

// jac_add_affine: acc += (x, y) or (x, -y) ("madd-2007-bl", 7M + 4S); handles infinity,
// P + P and P + (-P).
static void jac_add_affine(struct jac *acc, const struct affine *b, bool negate) {
    uint64_t by[LIMBS];
    if (negate) {
        fe_sub(by, (const uint64_t[LIMBS]){0}, b->y);
    } else {
        memcpy(by, b->y, sizeof(by));
    }
    if (is_zero(acc->z)) {
        memcpy(acc->x, b->x, sizeof(acc->x));
        memcpy(acc->y, by, sizeof(acc->y));
        memcpy(acc->z, fe_one, sizeof(acc->z));
        return;
    }
    uint64_t z1z1[LIMBS], u2[LIMBS], s2[LIMBS], h[LIMBS], hh[LIMBS], i[LIMBS], j[LIMBS];
    uint64_t r[LIMBS], v[LIMBS], t[LIMBS];
    fe_sqr(z1z1, acc->z);
    fe_mul(u2, b->x, z1z1);
    fe_mul(s2, by, acc->z);
    fe_mul(s2, s2, z1z1);
    fe_sub(h, u2, acc->x);
    fe_sub(r, s2, acc->y);
    if (is_zero(h)) {
        if (is_zero(r)) {
            jac_dbl(acc, acc);
        } else {
            memset(acc, 0, sizeof(*acc));
        }
        return;
    }
    fe_sqr(hh, h);
    fe_add(i, hh, hh);
    fe_add(i, i, i);
    fe_mul(j, h, i);
    fe_add(r, r, r);
    fe_mul(v, acc->x, i);
    // Z3 = (Z1 + H)^2 - Z1Z1 - HH
    fe_add(t, acc->z, h);
    fe_sqr(t, t);
    fe_sub(t, t, z1z1);
    fe_sub(acc->z, t, hh);
    // Y1 * J before X1/Y1 are overwritten.
    uint64_t y1j[LIMBS];
    fe_mul(y1j, acc->y, j);
    fe_add(y1j, y1j, y1j);
    // X3 = r^2 - J - 2V
    fe_sqr(t, r);
    fe_sub(t, t, j);
    fe_sub(t, t, v);
    fe_sub(acc->x, t, v);
    // Y3 = r (V - X3) - 2 Y1 J
    fe_sub(t, v, acc->x);
    fe_mul(t, r, t);
    fe_sub(acc->y, t, y1j);
}

// ---- tables -----------------------------------------------------------------------------------

// normalize: out[k] = affine form of in[k]; none of in[] is infinity. One inversion for all.
static void normalize(struct affine *out, const struct jac *in, size_t count) {
    uint64_t prefix[BUILD_CHUNK_POINTS][LIMBS];
    ASSERT(count > 0 && count <= BUILD_CHUNK_POINTS);
    memcpy(prefix[0], in[0].z, sizeof(prefix[0]));
    for (size_t k = 1; k < count; k++) {
        fe_mul(prefix[k], prefix[k - 1], in[k].z);
    }
    uint64_t inv[LIMBS];
    fe_inv(inv, prefix[count - 1]); // 1 / (z0 z1 ... z_{count-1})
    for (size_t k = count; k-- > 0;) {
        uint64_t zinv[LIMBS], zinv2[LIMBS], zinv3[LIMBS];
        if (k > 0) {
            fe_mul(zinv, inv, prefix[k - 1]);
            fe_mul(inv, inv, in[k].z);
        } else {
            memcpy(zinv, inv, sizeof(zinv));
        }
        fe_sqr(zinv2, zinv);
        fe_mul(zinv3, zinv2, zinv);
        fe_mul(out[k].x, in[k].x, zinv2);
        fe_mul(out[k].y, in[k].y, zinv3);
    }
}

// table_fill: t[i][j-1] = j * 2^(w i) * P for P = (x, y) affine, on the curve.
static void table_fill(struct attest_p384_table *t, const uint64_t x[LIMBS],
                       const uint64_t y[LIMBS]) {
    struct jac chunk[BUILD_CHUNK_POINTS];
    struct jac base; // 2^(w i) * P
    memcpy(base.x, x, sizeof(base.x));
    memcpy(base.y, y, sizeof(base.y));
    memcpy(base.z, fe_one, sizeof(base.z));
    const size_t per_chunk = BUILD_CHUNK_POINTS / WIN_POINTS;
    for (size_t w0 = 0; w0 < WINDOWS; w0 += per_chunk) {
        size_t nw = WINDOWS - w0 < per_chunk ? WINDOWS - w0 : per_chunk;
        for (size_t w = 0; w < nw; w++) {
            struct jac *row = &chunk[w * WIN_POINTS];
            row[0] = base;
            jac_dbl(&row[1], &base);
            for (size_t j = 2; j < WIN_POINTS; j++) {
                row[j] = row[j - 1];
                jac_add(&row[j], &base);
            }
            jac_dbl(&base, &row[WIN_POINTS - 1]); // 2^w * base
        }
        normalize(&t->t[w0][0], chunk, nw * WIN_POINTS);
    }
}

// is_on_curve: y^2 = x^3 - 3x + b.
static bool is_on_curve(const uint64_t x[LIMBS], const uint64_t y[LIMBS]) {
    uint64_t lhs[LIMBS], rhs[LIMBS], t[LIMBS];
    fe_sqr(lhs, y);
    fe_sqr(rhs, x);
    fe_mul(rhs, rhs, x);
    fe_add(t, x, x);
    fe_add(t, t, x);
    fe_sub(rhs, rhs, t);
    fe_add(rhs, rhs, curve_b);
    return is_equal(lhs, rhs);
}

// ---- constants from BoringSSL -----------------------------------------------------------------

static bool bn_limbs(uint64_t out[LIMBS], const BIGNUM *bn) {
    uint8_t be[ATTEST_P384_BYTES];
    if (!BN_bn2bin_padded(be, sizeof(be), bn)) {
        return false;
    }
    from_be(out, be);
    return true;
}

static void modulus_init(struct modulus *md) {
    uint64_t inv = 1; // Newton: inv = m0^-1 mod 2^64, doubling the correct bits each step
    for (size_t k = 0; k < 7; k++) {
        inv *= 2u - md->m[0] * inv;
    }
    md->m0inv = (uint64_t)0 - inv;
    // R mod m = 2^384 - m (m > 2^383), then R^2 = R * 2^384 by 384 modular doublings.
    uint64_t zero[LIMBS] = {0};
    sub_raw(md->one, zero, md->m);
    memcpy(md->rr, md->one, sizeof(md->rr));
    for (size_t k = 0; k < 384; k++) {
        mod_add(md->rr, md->rr, md->rr, md);
    }
}

static void init_tables(void) {
    attest_p384_use_default_code();
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
    BIGNUM *p = BN_new(), *a = BN_new(), *b = BN_new(), *gx = BN_new(), *gy = BN_new();
    bool ok = g != NULL && p != NULL && a != NULL && b != NULL && gx != NULL && gy != NULL &&
              EC_GROUP_get_curve_GFp(g, p, a, b, NULL) &&
              EC_POINT_get_affine_coordinates_GFp(g, EC_GROUP_get0_generator(g), gx, gy, NULL);
    uint64_t al[LIMBS], x[LIMBS], y[LIMBS], three[LIMBS] = {3}, p_minus_3[LIMBS];
    uint64_t check_p[LIMBS], zero[LIMBS] = {0}, check_d[LIMBS];
    struct modulus check_n = {0};
    ok = ok && bn_limbs(check_p, p) && bn_limbs(check_n.m, EC_GROUP_get0_order(g)) &&
         bn_limbs(al, a) && bn_limbs(curve_b, b) && bn_limbs(x, gx) && bn_limbs(y, gy);
    if (ok) {
        modulus_init(&check_n);
        sub_raw(check_d, zero, check_p); // 2^384 - p
        ok = is_equal(check_p, mod_p.m) && is_equal(check_d, p_d) &&
             memcmp(&check_n, &mod_n, sizeof(check_n)) == 0;
        sub_raw(p_minus_3, mod_p.m, three);
        ok = ok && is_equal(al, p_minus_3); // the doubling formula assumes a = -3
    }
    if (ok) {
        sub_raw(p_minus_n, mod_p.m, mod_n.m);
        ok = is_on_curve(x, y);
    }
    if (ok) {
        table_fill(&g_table, x, y);
    }
    BN_free(p);
    BN_free(a);
    BN_free(b);
    BN_free(gx);
    BN_free(gy);
    EC_GROUP_free(g);
    ERR_clear_error();
    init_ok = ok;
}

static bool init(void) {
    pthread_once(&init_once, init_tables);
    return init_ok;
}

// ---- public -----------------------------------------------------------------------------------

struct attest_p384_table *attest_p384_table_new(void) {
    return calloc(1, sizeof(struct attest_p384_table));
}

void attest_p384_table_free(struct attest_p384_table *t) {
    free(t);
}

bool attest_p384_table_fill(struct attest_p384_table *t, const uint8_t x_be[ATTEST_P384_BYTES],
                            const uint8_t y_be[ATTEST_P384_BYTES]) {
    ASSERT(t != NULL);
    if (!init()) {
        return false;
    }
    uint64_t x[LIMBS], y[LIMBS];
    from_be(x, x_be);
    from_be(y, y_be);
    if (!is_less(x, mod_p.m) || !is_less(y, mod_p.m)) {
        return false;
    }
    if (!is_on_curve(x, y)) {
        return false;
    }
    table_fill(t, x, y);
    return true;
}

static void to_be(uint8_t out[ATTEST_P384_BYTES], const uint64_t in[LIMBS]) {
    for (size_t i = 0; i < LIMBS; i++) {
        for (size_t b = 0; b < 8; b++) {
            out[ATTEST_P384_BYTES - 8 * (i + 1) + b] = (uint8_t)(in[i] >> (56 - 8 * b));
        }
    }
}

bool attest_p384_field_mul(uint8_t out_be[ATTEST_P384_BYTES], const uint8_t a_be[ATTEST_P384_BYTES],
                           const uint8_t *b_be) {
    uint64_t a[LIMBS], b[LIMBS], r[LIMBS];
    from_be(a, a_be);
    from_be(b, b_be != NULL ? b_be : a_be);
    if (!is_less(a, mod_p.m) || !is_less(b, mod_p.m)) {
        return false;
    }
    if (b_be == NULL) {
        fe_sqr(r, a);
    } else {
        fe_mul(r, a, b);
    }
    to_be(out_be, r);
    return true;
}

void attest_p384_field_reduce(uint8_t out_be[ATTEST_P384_BYTES],
                              const uint8_t t_be[2 * ATTEST_P384_BYTES]) {
    uint64_t t[2 * LIMBS], r[LIMBS];
    from_be(t + LIMBS, t_be);
    from_be(t, t_be + ATTEST_P384_BYTES);
#if ATTEST_P384_ADX
    if (atomic_load_explicit(&use_adx, memory_order_relaxed)) {
        attest_p384_reduce_adx(r, t);
        to_be(out_be, r);
        return;
    }
#endif
    fe_reduce(r, t);
    to_be(out_be, r);
}

bool attest_p384_scalar_inv(uint8_t out_be[ATTEST_P384_BYTES],
                            const uint8_t a_be[ATTEST_P384_BYTES]) {
    uint64_t a[LIMBS], r[LIMBS];
    from_be(a, a_be);
    if (is_zero(a) || !is_less(a, mod_n.m)) {
        return false;
    }
    sc_inv(r, a);
    to_be(out_be, r);
    return true;
}

bool attest_p384_use_adx(bool on) {
    if (!init() || (on && !cpu_has_adx())) {
        return false;
    }
    atomic_store(&use_adx, on);
    return true;
}

void attest_p384_use_default_code(void) {
    atomic_store(&use_adx, cpu_has_adx());
}

// recode: k = sum d[i] 2^(w i), d[i] in [-2^(w-1), 2^(w-1)]; k < 2^384.
static void recode(int16_t d[WINDOWS], const uint64_t k[LIMBS]) {
    unsigned carry = 0;
    for (size_t i = 0; i < WINDOWS; i++) {
        size_t bit = i * WIN_BITS;
        unsigned w = 0;
        if (bit < 384) {
            size_t limb = bit / 64, off = bit % 64;
            uint64_t v = k[limb] >> off;
            if (off > 64 - WIN_BITS && limb + 1 < LIMBS) {
                v |= k[limb + 1] << (64 - off);
            }
            w = (unsigned)(v & ((1u << WIN_BITS) - 1));
        }
        w += carry;
        if (w > WIN_POINTS) {
            d[i] = (int16_t)((int)w - (1 << WIN_BITS));
            carry = 1;
        } else {
            d[i] = (int16_t)w;
            carry = 0;
        }
    }
    ASSERT(carry == 0);
}

// prefetch_entry: start loading the table entry digit dd selects in window i. The entries a
// verification touches are spread over 2 x 338 KiB and do not stay cached between handshakes;
// their addresses are known from the digits, so each is fetched while the previous addition runs.
// always_inline: GCC 12 deletes calls to a separate function that only prefetches (it counts as
// free of side effects).
static inline __attribute__((always_inline)) void
prefetch_entry(const struct attest_p384_table *t, size_t i, int16_t dd) {
    if (dd != 0) {
        const char *e = (const char *)&t->t[i][(dd > 0 ? dd : -dd) - 1];
        __builtin_prefetch(e);
        __builtin_prefetch(e + sizeof(struct affine) - 1);
    }
}

static void add_digits(struct jac *acc, const struct attest_p384_table *t,
                       const int16_t d[WINDOWS]) {
    prefetch_entry(t, 0, d[0]);
    for (size_t i = 0; i < WINDOWS; i++) {
        if (i + 1 < WINDOWS) {
            prefetch_entry(t, i + 1, d[i + 1]);
        }
        if (d[i] > 0) {
            jac_add_affine(acc, &t->t[i][d[i] - 1], false);
        } else if (d[i] < 0) {
            jac_add_affine(acc, &t->t[i][-d[i] - 1], true);
        }
    }
}

bool attest_p384_verify(const struct attest_p384_table *q,
                        const uint8_t digest[ATTEST_P384_BYTES],
                        const uint8_t r_be[ATTEST_P384_BYTES],
                        const uint8_t s_be[ATTEST_P384_BYTES]) {
    ASSERT(q != NULL);
    if (!init()) {
        return false;
    }
    uint64_t r[LIMBS], s[LIMBS], e[LIMBS];
    from_be(r, r_be);
    from_be(s, s_be);
    from_be(e, digest); // SHA-384: the digest is exactly the 384-bit integer e
    if (is_zero(r) || is_zero(s) || !is_less(r, mod_n.m) || !is_less(s, mod_n.m)) {
        return false;
    }
    if (!is_less(e, mod_n.m)) {
        sub_raw(e, e, mod_n.m); // e < 2^384 < 2n
    }
    // w = s^-1 * R (Montgomery form); then u1 = e w / R and u2 = r w / R in normal form.
    uint64_t w[LIMBS], u1[LIMBS], u2[LIMBS];
    sc_inv(w, s);
    sc_mul(w, w, mod_n.rr);
    sc_mul(u1, e, w);
    sc_mul(u2, r, w);
    int16_t d1[WINDOWS], d2[WINDOWS];
    recode(d1, u1);
    recode(d2, u2);
    struct jac acc;
    memset(&acc, 0, sizeof(acc));
    add_digits(&acc, &g_table, d1);
    add_digits(&acc, q, d2);
    if (is_zero(acc.z)) {
        return false;
    }
    // x(acc) = X / Z^2 is in [0, p); accept if it is r or r + n (when r + n < p), without an
    // inversion: compare X with candidate * Z^2.
    uint64_t z2[LIMBS], t[LIMBS];
    fe_sqr(z2, acc.z);
    fe_mul(t, r, z2); // r < n < p
    if (is_equal(t, acc.x)) {
        return true;
    }
    if (is_less(r, p_minus_n)) {
        uint64_t rn[LIMBS]; // r + n < p
        add_raw(rn, r, mod_n.m);
        fe_mul(t, rn, z2);
        return is_equal(t, acc.x);
    }
    return false;
}
