// fuzz_report.c: libFuzzer target for the SNP report parser and the VCEK extension parser
// (attest_report_parse, attest_vcek_parse). Built by run_fuzz.sh with clang.
#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "core_base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct attest_claims c;
    struct attest_error err;
    if (attest_report_parse(&c, &err, data, size) == ATTEST_OK) {
        // Invariants of a parsed report.
        ASSERT(size == ATTEST_REPORT_BYTES);
        ASSERT(c.version >= 2 && c.version <= 5);
        ASSERT(c.vmpl <= 3);
        char name[200];
        ASSERT(attest_report_vcek_file_name(name, sizeof(name), &c) == 0);
    } else {
        ASSERT(err.status == ATTEST_REPORT_MALFORMED);
    }
    struct attest_vcek_info info;
    enum attest_status st = attest_vcek_parse(&info, &err, data, size);
    ASSERT(st == ATTEST_OK || st == ATTEST_VCEK_MALFORMED);
    if (st == ATTEST_OK) {
        ASSERT(info.hwid_len == 0 || info.hwid_len == 8 || info.hwid_len == 64);
    }
    return 0;
}
