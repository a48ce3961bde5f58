// fuzz_api_query.c: libFuzzer target for the HTTP API's query-string values and Accept header
// (core/core_api_query.c): `limit`, `since` and Accept reach these parsers from any local HTTP
// client.
// Checks: no crash or sanitizer report, results within the documented ranges, and a value that
// parses once parses the same way again.
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 256) {
        return 0;
    }
    char *text = malloc(size + 1); // exact size: ASan sees a read past the NUL
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    uint32_t limit = 0;
    int rc = core_api_parse_limit(&limit, text, 1000);
    ASSERT(rc == 0 || rc == -EINVAL || rc == -ERANGE);
    if (rc == 0) {
        ASSERT(limit >= 1 && limit <= 1000);
        uint32_t again = 0;
        ASSERT(core_api_parse_limit(&again, text, 1000) == 0 && again == limit);
    }
    uint64_t since = 0;
    rc = core_api_parse_since(&since, text);
    ASSERT(rc == 0 || rc == -EINVAL || rc == -ERANGE);
    if (rc == 0) {
        uint64_t again = 0;
        ASSERT(core_api_parse_since(&again, text) == 0 && again == since);
        // No wrap-around: unix seconds come back whole, and an RFC 3339 year is not before
        // what it says (a value past 2554 in nanoseconds used to wrap to near 1970).
        size_t len = strlen(text); // what the parser saw: the input up to its first NUL
        if (strspn(text, "0123456789") == len) {
            ASSERT(since % 1000000000ull == 0 && since / 1000000000ull == strtoull(text, NULL, 10));
        } else {
            ASSERT(len >= 20 && text[4] == '-'); // RFC 3339: YYYY-...
            uint64_t year = (uint64_t)((text[0] - '0') * 1000 + (text[1] - '0') * 100 +
                                       (text[2] - '0') * 10 + (text[3] - '0'));
            ASSERT(since / 1000000000ull >= (year - 1970) * 365ull * 86400ull);
        }
    }
    // The Accept header reaches core_api_parse_accept from any local HTTP client too.
    enum core_api_accept a = core_api_parse_accept(text);
    ASSERT(a == CORE_API_ACCEPT_EITHER || a == CORE_API_ACCEPT_JSON ||
           a == CORE_API_ACCEPT_PROTOBUF);
    ASSERT(core_api_parse_accept(text) == a);
    free(text);
    return 0;
}
