// fuzz_pgwire.c: libFuzzer target for the pgwire front end (core/core_pgwire.c): the
// pre-startup sniffer, the StartupMessage parser and the ErrorResponse writer. The first bytes
// of every connection reach these functions before any authentication.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Prefix lengths checked for consistency (each in its own exact-size heap copy, so ASan sees a
// read one byte past what the parser was given).
#define PREFIX_CHECK_MAX 48u

static enum core_pgwire_startup startup(const uint8_t *buf, uint32_t len, uint32_t *out_len,
                                        char *user, char *db, const char **reason) {
    enum core_pgwire_startup st = core_pgwire_startup(buf, len, out_len, user, CORE_NAME_MAX, db,
                                                      CORE_NAME_MAX, reason);
    switch (st) {
    case CORE_STARTUP_NEED_MORE:
        ASSERT(*reason == NULL);
        break;
    case CORE_STARTUP_OK:
        ASSERT(*out_len >= 8 && *out_len <= len && *out_len <= CORE_STARTUP_BYTES_MAX);
        ASSERT(strlen(user) > 0 && strlen(user) < CORE_NAME_MAX);
        ASSERT(strlen(db) < CORE_NAME_MAX);
        ASSERT(core_base_utf8_valid((const uint8_t *)user, strlen(user)));
        ASSERT(core_base_utf8_valid((const uint8_t *)db, strlen(db)));
        break;
    case CORE_STARTUP_CANCEL:
        ASSERT(*out_len == 16 && len >= 16);
        break;
    case CORE_STARTUP_BAD:
    case CORE_STARTUP_VERSION:
        ASSERT(*reason != NULL && strlen(*reason) > 0);
        break;
    }
    return st;
}

static void check_prefix(const uint8_t *data, uint32_t k, enum core_pgwire_sniff full_sniff,
                         enum core_pgwire_startup full_startup) {
    uint8_t *copy = malloc(k ? k : 1);
    ASSERT(copy != NULL);
    memcpy(copy, data, k);
    // A prefix either asks for more bytes or already gives the final answer.
    enum core_pgwire_sniff s = core_pgwire_sniff(copy, k);
    ASSERT(s == CORE_SNIFF_NEED_MORE || s == full_sniff);
    uint32_t out_len = 0;
    char user[CORE_NAME_MAX], db[CORE_NAME_MAX];
    const char *reason = NULL;
    enum core_pgwire_startup st = startup(copy, k, &out_len, user, db, &reason);
    ASSERT(st == CORE_STARTUP_NEED_MORE || st == full_startup);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > CORE_STARTUP_BYTES_MAX * 2) {
        return 0;
    }
    uint32_t len = (uint32_t)size;
    enum core_pgwire_sniff s = core_pgwire_sniff(data, len);
    if (len >= CORE_SNIFF_BYTES_MAX) {
        ASSERT(s != CORE_SNIFF_NEED_MORE); // the sniff buffer is bounded
    }
    if (s == CORE_SNIFF_DIRECT_TLS) {
        ASSERT(data[0] == 0x16);
    }
    uint32_t out_len = 0;
    char user[CORE_NAME_MAX], db[CORE_NAME_MAX];
    const char *reason = NULL;
    enum core_pgwire_startup st = startup(data, len, &out_len, user, db, &reason);
    for (uint32_t k = 0; k < len && k <= PREFIX_CHECK_MAX; k++) {
        check_prefix(data, k, s, st);
    }
    if (st == CORE_STARTUP_OK && out_len > PREFIX_CHECK_MAX) {
        check_prefix(data, out_len - 1, s, st); // one byte short of the message
    }

    // ErrorResponse with the input as message (its bytes up to the first NUL) and a capacity
    // taken from the input: never writes past `cap`, and what it writes is well formed.
    char msg[512];
    size_t mlen = size < sizeof(msg) - 1 ? size : sizeof(msg) - 1;
    memcpy(msg, data, mlen);
    msg[mlen] = '\0';
    uint32_t cap = size > 0 ? data[size - 1] * 3u : 0;
    uint8_t *out = malloc(cap ? cap : 1);
    ASSERT(out != NULL);
    uint32_t n = core_pgwire_error(out, cap, "08P01", msg);
    ASSERT(n <= cap);
    if (n > 0) {
        ASSERT(out[0] == 'E' && core_pgwire_be32(out + 1) == n - 1 && out[n - 1] == 0);
    }
    free(out);
    return 0;
}
