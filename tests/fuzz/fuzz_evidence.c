// fuzz_evidence.c: libFuzzer target for the evidence decoder and the certificate walker
// (attest_evidence_decode, attest_evidence_from_cert) plus encode/decode round trips.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attest.h"
#include "core_base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct attest_evidence ev, back;
static uint8_t buf[ATTEST_EVIDENCE_DER_MAX_BYTES];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct attest_error err;
    if (attest_evidence_decode(&ev, &err, data, size) == ATTEST_OK) {
        ASSERT(ev.nonce_len >= ATTEST_NONCE_MIN_BYTES && ev.nonce_len <= ATTEST_NONCE_MAX_BYTES);
        // Strict DER: what decodes re-encodes to the same bytes.
        size_t len = 0;
        ASSERT(attest_evidence_encode(buf, sizeof(buf), &len, &ev) == 0);
        ASSERT(len == size && memcmp(buf, data, size) == 0);
        ASSERT(attest_evidence_decode(&back, &err, buf, len) == ATTEST_OK);
    } else {
        ASSERT(err.status == ATTEST_EVIDENCE_MALFORMED);
    }
    if (attest_evidence_from_cert(&ev, &err, data, size) == ATTEST_OK) {
        ASSERT(ev.has_spki);
        (void)attest_evidence_check_binding(&ev, &err);
    }
    return 0;
}
