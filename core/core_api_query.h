// core_api_query.h: the HTTP API's query values and Accept header, the part without API state
// (core_api_query.c), so that C++ tests can include it.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// core_api_parse_limit parses a decimal `limit` query value in 1..max. Returns 0, -EINVAL (not a
// number) or -ERANGE.
int core_api_parse_limit(uint32_t *out, const char *text, uint32_t max);
// core_api_parse_since parses a `since` query value: unix seconds, or RFC 3339 UTC
// ("2026-11-22T10:00:00Z", optional fraction). Returns 0, -EINVAL or -ERANGE.
int core_api_parse_since(uint64_t *out_ns, const char *text);

// What an Accept header prefers of the API's two formats.
enum core_api_accept {
    CORE_API_ACCEPT_EITHER = 0, // neither is preferred: the endpoint's default
    CORE_API_ACCEPT_JSON,
    CORE_API_ACCEPT_PROTOBUF,
};
// core_api_parse_accept reads an Accept header (RFC 9110 §12.5.1): comma-separated media ranges
// with optional parameters, among them q (0..1, at most 3 decimals; 1 when absent). Each of
// application/json and application/x-protobuf takes the q of the range naming it exactly (case
// does not matter), else of application/*, else of */*, else 0; the higher wins, a tie prefers
// neither. A range with a malformed q is ignored. NULL: either.
enum core_api_accept core_api_parse_accept(const char *accept);

#ifdef __cplusplus
}
#endif
