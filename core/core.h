// core.h: the gateway's orchestration API, grouped by the file that implements it.
#ifndef ATLS_CORE_H
#define ATLS_CORE_H

#include <stddef.h>

#include "core_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* core_config.c */

// core_config_load parses the INI file at `path` into `out_cfg` (defaults first), resolving
// relative paths against the file's directory, then validates. On failure returns -EINVAL (or
// -errno for I/O) and writes one line "file:line: problem" into `err`.
int core_config_load(struct core_config *out_cfg, char *err, size_t err_len, const char *path);

// core_config_parse_addr parses "host:port" (IPv4, [IPv6] or a name resolving on loopback-only
// test setups) into `out`. Returns 0 or -EINVAL.
int core_config_parse_addr(struct core_addr *out, const char *text);

#ifdef __cplusplus
}
#endif

#endif // ATLS_CORE_H
