// attest.c: module entry: stable failure codes, error sentences, product names and the
// registry of report providers.
#include "attest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest_internal.h"
#include "core_base.h"

extern const struct attest_provider_ops attest_sim_ops;
extern const struct attest_provider_ops attest_tsm_ops;
extern const struct attest_provider_ops attest_sev_guest_ops;

static const char *const status_codes[ATTEST_STATUS_COUNT] = {
    [ATTEST_OK] = "OK",
    [ATTEST_REPORT_MALFORMED] = "REPORT_MALFORMED",
    [ATTEST_EVIDENCE_MALFORMED] = "EVIDENCE_MALFORMED",
    [ATTEST_SIGNATURE_INVALID] = "SIGNATURE_INVALID",
    [ATTEST_CHAIN_INVALID] = "CHAIN_INVALID",
    [ATTEST_CERT_EXPIRED] = "CERT_EXPIRED",
    [ATTEST_VCEK_MISSING] = "VCEK_MISSING",
    [ATTEST_VCEK_MALFORMED] = "VCEK_MALFORMED",
    [ATTEST_VCEK_TCB_MISMATCH] = "VCEK_TCB_MISMATCH",
    [ATTEST_CHIP_ID_MISMATCH] = "CHIP_ID_MISMATCH",
    [ATTEST_PRODUCT_MISMATCH] = "PRODUCT_MISMATCH",
    [ATTEST_SIGNER_MISMATCH] = "SIGNER_MISMATCH",
    [ATTEST_BINDING_MISMATCH] = "BINDING_MISMATCH",
    [ATTEST_CONFIG_INVALID] = "CONFIG_INVALID",
    [ATTEST_PROVIDER_UNAVAILABLE] = "PROVIDER_UNAVAILABLE",
    [ATTEST_PROVIDER_FAILED] = "PROVIDER_FAILED",
    [ATTEST_INTERNAL] = "INTERNAL",
};

const char *attest_status_code(enum attest_status status) {
    if ((unsigned)status >= ATTEST_STATUS_COUNT || status_codes[status] == NULL) {
        return "INTERNAL";
    }
    return status_codes[status];
}

enum attest_status attest_error_set(struct attest_error *err, enum attest_status status,
                                    const char *fmt, ...) {
    if (err != NULL) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n < 0) {
            err->msg[0] = '\0';
        }
    }
    return status;
}

const char *attest_product_name(enum attest_product product) {
    switch (product) {
    case ATTEST_PRODUCT_MILAN:
        return "Milan";
    case ATTEST_PRODUCT_GENOA:
        return "Genoa";
    case ATTEST_PRODUCT_TURIN:
        return "Turin";
    case ATTEST_PRODUCT_UNKNOWN:
        break;
    }
    return "unknown";
}

const struct attest_provider_ops *attest_provider_find(const char *name) {
    static const struct attest_provider_ops *const all[] = {
        &attest_sim_ops,
        &attest_tsm_ops,
        &attest_sev_guest_ops,
    };
    ASSERT(name != NULL);
    for (size_t i = 0; i < ARRAY_LEN(all); i++) {
        if (strcmp(all[i]->name, name) == 0) {
            return all[i];
        }
    }
    return NULL;
}

void attest_provider_config_init(struct attest_provider_config *cfg) {
    ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->sev_guest_dev, sizeof(cfg->sev_guest_dev), "%s", "/dev/sev-guest");
    snprintf(cfg->tsm_dir, sizeof(cfg->tsm_dir), "%s", "/sys/kernel/config/tsm/report");
    cfg->sim.policy = ATTEST_POLICY_SMT | ATTEST_POLICY_RESERVED_1;
    cfg->sim.tcb_bl = 3;
    cfg->sim.tcb_tee = 0;
    cfg->sim.tcb_snp = 8;
    cfg->sim.tcb_ucode = 115;
    // A recognisable default chip id; tests choose their own.
    for (size_t i = 0; i < ATTEST_CHIP_ID_BYTES; i++) {
        cfg->sim.chip_id[i] = (uint8_t)(0xA0u + i);
    }
}
