// attest_report.c: format checks and field decoding of a raw ATTESTATION_REPORT (v2, v3..v5).
// No cryptography: the signature and chain are checked in attest_verify.c.
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

static bool all_zero(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

// first_nonzero returns the offset of the first non-zero byte in [from, to) or -1.
static long first_nonzero(const uint8_t *r, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
        if (r[i] != 0) {
            return (long)i;
        }
    }
    return -1;
}

enum attest_product attest_report_product_from_cpuid(uint8_t fam, uint8_t mod) {
    if (fam == 0x19) {
        if (mod <= 0x0F) {
            return ATTEST_PRODUCT_MILAN;
        }
        if ((mod >= 0x10 && mod <= 0x1F) || (mod >= 0xA0 && mod <= 0xAF)) {
            return ATTEST_PRODUCT_GENOA;
        }
    } else if (fam == 0x1A && mod <= 0x11) {
        return ATTEST_PRODUCT_TURIN;
    }
    return ATTEST_PRODUCT_UNKNOWN;
}

struct attest_tcb attest_report_decode_tcb(uint64_t raw, enum attest_product product) {
    struct attest_tcb t = {.raw = raw};
    uint8_t b[8];
    attest_put_le64(b, raw);
    if (product == ATTEST_PRODUCT_TURIN) {
        t.fmc = b[0];
        t.bl = b[1];
        t.tee = b[2];
        t.snp = b[3];
    } else {
        t.bl = b[0];
        t.tee = b[1];
        t.snp = b[6];
    }
    t.ucode = b[7];
    return t;
}

// tcb_reserved_ok: bytes that are reserved in the product's TCB layout must be zero.
static bool tcb_reserved_ok(uint64_t raw, enum attest_product product) {
    uint8_t b[8];
    attest_put_le64(b, raw);
    if (product == ATTEST_PRODUCT_TURIN) {
        return all_zero(b + 4, 3);
    }
    return all_zero(b + 2, 4);
}

static enum attest_status malformed(struct attest_error *err, const char *what, long off) {
    return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                            "report %s (offset 0x%03lx); the report is corrupt or not an "
                            "SEV-SNP ATTESTATION_REPORT",
                            what, (unsigned long)off);
}

// check_mbz: every byte that must be zero for this version, including the unsigned padding.
static enum attest_status check_mbz(struct attest_error *err, const uint8_t *r, uint32_t version) {
    struct {
        size_t from, to;
        const char *what;
    } ranges[] = {
        {0x04C, 0x050, "reserved field after SIGNER_INFO is not zero"},
        {version >= 3 ? 0x18Bu : 0x188u, 0x1A0, "reserved bytes after REPORTED_TCB are not zero"},
        {0x1EB, 0x1EC, "reserved byte after CURRENT_MAJOR is not zero"},
        {0x1EF, 0x1F0, "reserved byte after COMMITTED_MAJOR is not zero"},
        {0x1F8, version >= 5 ? 0x1F8u : 0x208u, "mitigation vectors are set in a pre-v5 report"},
        {0x208, 0x2A0, "reserved bytes before the signature are not zero"},
        {0x2D0, 0x2E8, "top 24 bytes of signature R are not zero"},
        {0x318, 0x330, "top 24 bytes of signature S are not zero"},
        {0x330, 0x4A0, "unsigned signature padding is not zero"},
    };
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++) {
        long off = first_nonzero(r, ranges[i].from, ranges[i].to);
        if (off >= 0) {
            return malformed(err, ranges[i].what, off);
        }
    }
    return ATTEST_OK;
}

static enum attest_status check_header(struct attest_error *err, const uint8_t *r) {
    uint32_t version = attest_le32(r + ATTEST_OFF_VERSION);
    if (version < 2 || version > 5) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report version %u is not supported (expected 2..5)", version);
    }
    uint32_t algo = attest_le32(r + ATTEST_OFF_SIG_ALGO);
    if (algo != 1) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report SIGNATURE_ALGO is %u; only 1 (ECDSA P-384/SHA-384) is "
                                "accepted",
                                algo);
    }
    uint32_t vmpl = attest_le32(r + ATTEST_OFF_VMPL);
    if (vmpl > 3) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED, "report VMPL %u is above 3", vmpl);
    }
    uint32_t si = attest_le32(r + ATTEST_OFF_SIGNER_INFO);
    uint32_t key = (si >> 2) & 7u;
    if ((si >> 5) != 0 || (si & 2u) != 0 || key > 1) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report SIGNER_INFO 0x%x: chip key masked, reserved bits set or "
                                "signing key %u is neither VCEK (0) nor VLEK (1); the firmware "
                                "did not sign it",
                                si, key);
    }
    uint64_t policy = attest_le64(r + ATTEST_OFF_POLICY);
    if ((policy & ATTEST_POLICY_RESERVED_1) == 0 || (policy >> 26) != 0) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report POLICY 0x%llx: bit 17 must be 1 and bits 63:26 zero",
                                (unsigned long long)policy);
    }
    return ATTEST_OK;
}

static void decode(struct attest_claims *c, const uint8_t *r) {
    memset(c, 0, sizeof(*c));
    c->version = attest_le32(r + ATTEST_OFF_VERSION);
    c->guest_svn = attest_le32(r + ATTEST_OFF_GUEST_SVN);
    c->policy = attest_le64(r + ATTEST_OFF_POLICY);
    c->abi_minor = (uint8_t)(c->policy & 0xFF);
    c->abi_major = (uint8_t)((c->policy >> 8) & 0xFF);
    c->smt_allowed = (c->policy & ATTEST_POLICY_SMT) != 0;
    c->migrate_ma = (c->policy & ATTEST_POLICY_MIGRATE_MA) != 0;
    c->debug = (c->policy & ATTEST_POLICY_DEBUG) != 0;
    memcpy(c->family_id, r + ATTEST_OFF_FAMILY_ID, 16);
    memcpy(c->image_id, r + ATTEST_OFF_IMAGE_ID, 16);
    c->vmpl = attest_le32(r + ATTEST_OFF_VMPL);
    c->signature_algo = attest_le32(r + ATTEST_OFF_SIG_ALGO);
    c->platform_info = attest_le64(r + ATTEST_OFF_PLATFORM_INFO);
    c->signer_info = attest_le32(r + ATTEST_OFF_SIGNER_INFO);
    c->author_key_en = (c->signer_info & 1u) != 0;
    c->signer = ((c->signer_info >> 2) & 7u) == 1 ? ATTEST_SIGNER_VLEK : ATTEST_SIGNER_VCEK;
    memcpy(c->report_data, r + ATTEST_OFF_REPORT_DATA, ATTEST_REPORT_DATA_BYTES);
    memcpy(c->measurement, r + ATTEST_OFF_MEASUREMENT, ATTEST_MEASUREMENT_BYTES);
    memcpy(c->host_data, r + ATTEST_OFF_HOST_DATA, ATTEST_HOST_DATA_BYTES);
    memcpy(c->id_key_digest, r + ATTEST_OFF_ID_KEY_DIGEST, 48);
    memcpy(c->author_key_digest, r + ATTEST_OFF_AUTHOR_KEY_DIGEST, 48);
    memcpy(c->report_id, r + ATTEST_OFF_REPORT_ID, 32);
    memcpy(c->report_id_ma, r + ATTEST_OFF_REPORT_ID_MA, 32);
    if (c->version >= 3) {
        c->cpuid_fam = r[ATTEST_OFF_CPUID_FAM];
        c->cpuid_mod = r[ATTEST_OFF_CPUID_MOD];
        c->cpuid_step = r[ATTEST_OFF_CPUID_STEP];
        c->product = attest_report_product_from_cpuid(c->cpuid_fam, c->cpuid_mod);
    }
    memcpy(c->chip_id, r + ATTEST_OFF_CHIP_ID, ATTEST_CHIP_ID_BYTES);
    c->current_tcb.raw = attest_le64(r + ATTEST_OFF_CURRENT_TCB);
    c->reported_tcb.raw = attest_le64(r + ATTEST_OFF_REPORTED_TCB);
    c->committed_tcb.raw = attest_le64(r + ATTEST_OFF_COMMITTED_TCB);
    c->launch_tcb.raw = attest_le64(r + ATTEST_OFF_LAUNCH_TCB);
    c->current_build = r[ATTEST_OFF_CURRENT_BUILD];
    c->current_minor = r[ATTEST_OFF_CURRENT_BUILD + 1];
    c->current_major = r[ATTEST_OFF_CURRENT_BUILD + 2];
    c->committed_build = r[ATTEST_OFF_COMMITTED_BUILD];
    c->committed_minor = r[ATTEST_OFF_COMMITTED_BUILD + 1];
    c->committed_major = r[ATTEST_OFF_COMMITTED_BUILD + 2];
    if (c->version >= 5) {
        c->launch_mit_vector = attest_le64(r + ATTEST_OFF_LAUNCH_MIT);
        c->current_mit_vector = attest_le64(r + ATTEST_OFF_CURRENT_MIT);
    }
    attest_claims_set_product(c, c->product);
}

void attest_claims_set_product(struct attest_claims *c, enum attest_product product) {
    c->product = product;
    c->current_tcb = attest_report_decode_tcb(c->current_tcb.raw, product);
    c->reported_tcb = attest_report_decode_tcb(c->reported_tcb.raw, product);
    c->committed_tcb = attest_report_decode_tcb(c->committed_tcb.raw, product);
    c->launch_tcb = attest_report_decode_tcb(c->launch_tcb.raw, product);
}

enum attest_status attest_report_parse(struct attest_claims *out_claims, struct attest_error *err,
                                       const uint8_t *report, size_t report_len) {
    ASSERT(out_claims != NULL);
    memset(out_claims, 0, sizeof(*out_claims));
    if (report == NULL || report_len != ATTEST_REPORT_BYTES) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report is %zu bytes; an SEV-SNP report is exactly %u bytes",
                                report == NULL ? (size_t)0 : report_len, ATTEST_REPORT_BYTES);
    }
    enum attest_status st = check_header(err, report);
    if (st != ATTEST_OK) {
        return st;
    }
    uint32_t version = attest_le32(report);
    st = check_mbz(err, report, version);
    if (st != ATTEST_OK) {
        return st;
    }
    if (version >= 3 && report[ATTEST_OFF_CPUID_STEP] > 0xF) {
        return malformed(err, "CPUID_STEP above 0xF", ATTEST_OFF_CPUID_STEP);
    }
    struct attest_claims *c = out_claims;
    decode(c, report);
    if (version >= 3 && c->product == ATTEST_PRODUCT_UNKNOWN) {
        return attest_error_set(err, ATTEST_REPORT_MALFORMED,
                                "report CPUID family 0x%02x model 0x%02x is not a known SEV-SNP "
                                "product line (Milan, Genoa, Turin)",
                                c->cpuid_fam, c->cpuid_mod);
    }
    if (c->product != ATTEST_PRODUCT_UNKNOWN &&
        !tcb_reserved_ok(c->reported_tcb.raw, c->product)) {
        return malformed(err, "REPORTED_TCB has reserved bytes set", ATTEST_OFF_REPORTED_TCB);
    }
    return ATTEST_OK;
}

int attest_report_vcek_file_name(char *out, size_t out_size, const struct attest_claims *claims) {
    ASSERT(out != NULL && claims != NULL);
    size_t hw_len = claims->product == ATTEST_PRODUCT_TURIN ? 8 : ATTEST_CHIP_ID_BYTES;
    char hex[2 * ATTEST_CHIP_ID_BYTES + 1];
    core_base_hex_encode(hex, claims->chip_id, hw_len);
    int n = snprintf(out, out_size, "%s-%016llx.der", hex,
                     (unsigned long long)claims->reported_tcb.raw);
    if (n < 0 || (size_t)n >= out_size) {
        return -ENOSPC;
    }
    return 0;
}
