// atlsctl.h: subcommand entry points of the atlsctl tool (client side and operator side).
#ifndef ATLS_ATLSCTL_H
#define ATLS_ATLSCTL_H

// atlsctl_attest_main runs `nonce`, `client-cert` and `report` (argv[0] is the subcommand name).
// Returns the process exit status: 0 success, 1 verification/operation failed, 2 usage error.
int atlsctl_attest_main(int argc, char **argv);

// atlsctl_audit_main runs `audit list|show|verify` (argv[0] is "audit"). Same exit statuses.
int atlsctl_audit_main(int argc, char **argv);

#include <stddef.h>

// atlsctl_http_get GETs `url` (http://host[:port]/path?query) with `accept` as the Accept header.
// On 200 sets `*out_body` (malloc'd, NUL-terminated, caller frees) and `*out_len`. Returns 0, or
// -errno after printing the reason (including the gateway's own error line) to stderr.
int atlsctl_http_get(const char *url, const char *accept, char **out_body, size_t *out_len);

#endif // ATLS_ATLSCTL_H
