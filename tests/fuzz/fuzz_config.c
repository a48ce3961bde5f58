// fuzz_config.c: libFuzzer target for the main config INI loader (core/core_config.c,
// core_config_load, the loader behind `atls-proxy --check-config`). The loader takes a path,
// so each input is written to a private temp file first. Loading either succeeds with a
// config that satisfies the validator's promises, or fails with one "file..." line.
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "core_base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// getaddrinfo is interposed so that a fuzzed host name never becomes a DNS query (slow and
// non-deterministic): only numeric hosts and "localhost" resolve.
typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    static gai_fn real;
    if (real == NULL) {
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    }
    struct addrinfo h;
    memset(&h, 0, sizeof(h));
    if (hints != NULL) {
        h = *hints;
    }
    h.ai_flags |= AI_NUMERICHOST;
    if (node != NULL && strcmp(node, "localhost") == 0) {
        node = "127.0.0.1";
    }
    return real(node, service, &h, res);
}

static char dir_path[64];
static char path[64];
static struct core_config cfg;

// remove_temp deletes the input file and its directory when the fuzzer exits.
static void remove_temp(void) {
    unlink(path);
    rmdir(dir_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024) {
        return 0;
    }
    if (path[0] == '\0') {
        // tmpfs when there is one: every input is written and read back twice.
        char dir[] = "/dev/shm/fuzz_config.XXXXXX";
        if (mkdtemp(dir) == NULL) {
            memcpy(dir, "/tmp/fuzz_config.XXXXXX", sizeof(dir));
            ASSERT(mkdtemp(dir) != NULL);
        }
        snprintf(dir_path, sizeof(dir_path), "%s", dir);
        snprintf(path, sizeof(path), "%s/proxy.ini", dir);
        atexit(remove_temp);
    }
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    ASSERT(fwrite(data, 1, size, f) == size);
    ASSERT(fclose(f) == 0);
    char err[512];
    memset(err, 0, sizeof(err));
    int rc = core_config_load(&cfg, err, sizeof(err), path);
    if (rc == 0) {
        ASSERT(cfg.listen_count >= 1 && cfg.listen_count <= CORE_LISTEN_MAX);
        ASSERT(cfg.backend_count >= 1 && cfg.backend_count <= CORE_BACKENDS_MAX);
        ASSERT(cfg.workers <= CORE_WORKERS_MAX);
        ASSERT(cfg.conns_max >= 16);
        ASSERT(cfg.mode == CORE_MODE_TERMINATE || cfg.mode == CORE_MODE_PASSTHROUGH);
        ASSERT(memchr(cfg.node_id, 0, sizeof(cfg.node_id)) != NULL);
        ASSERT(memchr(cfg.tls_cert, 0, sizeof(cfg.tls_cert)) != NULL);
        ASSERT(memchr(cfg.tls_key, 0, sizeof(cfg.tls_key)) != NULL);
        for (uint32_t i = 0; i < cfg.listen_count; i++) {
            ASSERT(cfg.listen[i].len > 0 && cfg.listen[i].len <= sizeof(cfg.listen[i].ss));
        }
    } else {
        // One line naming the file (the loader never exits the process).
        ASSERT(rc < 0);
        ASSERT(strncmp(err, path, strlen(path)) == 0 || strncmp(err, "config path", 11) == 0);
        ASSERT(strchr(err, '\n') == NULL);
    }
    return 0;
}
