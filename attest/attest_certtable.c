// attest_certtable.c: the GHCB extended-report certificate table (GHCB 56421 §4.1.8.1), as
// returned by SNP_GET_EXT_REPORT and the configfs-tsm auxblob. Host-supplied: never trusted as
// anchors, only used as VCEK/ASK candidates that the verifier chains to pinned roots.
#include <string.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define ENTRY_BYTES 24u
#define ENTRIES_MAX 16u

// GUIDs in RFC 4122 byte order (spec §3.3).
static const uint8_t guid_ask[16] = {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
                                     0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82};
static const uint8_t guid_vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};
static const uint8_t guid_vlek[16] = {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
                                      0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1};

enum attest_status attest_certtable_parse(struct attest_report_out *out, struct attest_error *err,
                                          const uint8_t *table, size_t len) {
    ASSERT(out != NULL);
    static const uint8_t zero[ENTRY_BYTES] = {0};
    for (size_t i = 0; i < ENTRIES_MAX; i++) {
        size_t off = i * ENTRY_BYTES;
        if (off + ENTRY_BYTES > len) {
            return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                    "certificate table is not terminated by an all-zero entry");
        }
        const uint8_t *e = table + off;
        if (memcmp(e, zero, ENTRY_BYTES) == 0) {
            return ATTEST_OK;
        }
        uint32_t cert_off = attest_le32(e + 16);
        uint32_t cert_len = attest_le32(e + 20);
        if ((uint64_t)cert_off + cert_len > len || cert_off < off + ENTRY_BYTES ||
            cert_len > ATTEST_CERT_DER_MAX_BYTES) {
            return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                    "certificate table entry %zu points outside the table "
                                    "(offset %u, length %u of %zu bytes)",
                                    i, cert_off, cert_len, len);
        }
        if (memcmp(e, guid_vcek, 16) == 0 || memcmp(e, guid_vlek, 16) == 0) {
            memcpy(out->vcek_der, table + cert_off, cert_len);
            out->vcek_len = cert_len;
        } else if (memcmp(e, guid_ask, 16) == 0) {
            memcpy(out->ask_der, table + cert_off, cert_len);
            out->ask_len = cert_len;
        } // ARK, CRL and unknown entries are ignored: the ARK is pinned, never taken from here.
    }
    return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                            "certificate table has more than %u entries", ENTRIES_MAX);
}
