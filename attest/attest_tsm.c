// attest_tsm.c: the tsm provider: configfs-tsm report entries (Linux >= 6.7, spec §4.2). The
// request runs over a small filesystem ops table so tests drive it against a fake configfs.
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define AUXBLOB_MAX_BYTES (16u * 1024u) // the kernel's cert buffer for sev_guest (SEV_FW_BLOB_MAX)
#define ATTR_SMALL_MAX_BYTES 32u        // provider, generation: short text
#define ATTR_PATH_MAX_BYTES (ATTEST_PATH_MAX_BYTES + 128u)

struct tsm_state {
    char dir[ATTEST_PATH_MAX_BYTES];
    uint32_t vmpl;
    unsigned seq;
};

// ---- the real configfs ------------------------------------------------------------------------

static int real_mkdir(void *ctx, const char *path) {
    (void)ctx;
    return mkdir(path, 0700) == 0 ? 0 : -errno;
}

static int real_rmdir(void *ctx, const char *path) {
    (void)ctx;
    return rmdir(path) == 0 ? 0 : -errno;
}

static int real_read(void *ctx, const char *path, uint8_t *buf, size_t cap, size_t *out_len) {
    (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t off = 0;
    int rc = 0;
    for (;;) {
        uint8_t extra;
        // One byte past `cap` tells a too-long attribute from one that fills the buffer exactly.
        bool full = off == cap;
        ssize_t n = full ? read(fd, &extra, 1) : read(fd, buf + off, cap - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) {
            break;
        }
        if (full) {
            rc = -EFBIG;
            break;
        }
        off += (size_t)n;
    }
    close(fd);
    *out_len = off;
    return rc;
}

static int real_write(void *ctx, const char *path, const void *data, size_t len) {
    (void)ctx;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    // configfs binary attributes take the whole value in one write(2).
    ssize_t n = write(fd, data, len);
    int rc = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    if (close(fd) != 0 && rc == 0) {
        rc = -errno; // configfs commits binary attributes on close; errors surface here
    }
    return rc;
}

const struct attest_tsm_fs attest_tsm_fs_real = {
    .mkdir = real_mkdir,
    .rmdir = real_rmdir,
    .read = real_read,
    .write = real_write,
};

// ---- one request ------------------------------------------------------------------------------

struct tsm_entry {
    const struct attest_tsm_fs *fs;
    void *ctx;
    char path[ATTR_PATH_MAX_BYTES];
};

static int entry_read(const struct tsm_entry *e, const char *attr, uint8_t *buf, size_t cap,
                      size_t *out_len) {
    char path[ATTR_PATH_MAX_BYTES + 16];
    snprintf(path, sizeof(path), "%s/%s", e->path, attr);
    *out_len = 0;
    return e->fs->read(e->ctx, path, buf, cap, out_len);
}

static int entry_write(const struct tsm_entry *e, const char *attr, const void *data, size_t len) {
    char path[ATTR_PATH_MAX_BYTES + 16];
    snprintf(path, sizeof(path), "%s/%s", e->path, attr);
    return e->fs->write(e->ctx, path, data, len);
}

// read_text reads a short text attribute into `out` (NUL-terminated, trailing newline removed).
static int read_text(const struct tsm_entry *e, const char *attr, char *out, size_t out_size) {
    size_t n = 0;
    int rc = entry_read(e, attr, (uint8_t *)out, out_size - 1, &n);
    out[rc == 0 ? n : 0] = '\0';
    if (rc == 0 && n > 0 && out[n - 1] == '\n') {
        out[n - 1] = '\0';
    }
    return rc;
}

// read_generation parses the decimal `generation` attribute; -EPROTO when it is not a number.
static int read_generation(const struct tsm_entry *e, uint64_t *out) {
    char text[ATTR_SMALL_MAX_BYTES];
    int rc = read_text(e, "generation", text, sizeof(text));
    if (rc != 0) {
        return rc;
    }
    uint64_t v = 0;
    size_t i = 0;
    for (; text[i] >= '0' && text[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return -EPROTO;
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == 0 || text[i] != '\0') {
        return -EPROTO;
    }
    *out = v;
    return 0;
}

// entry_request runs the request inside the freshly created entry `e` (spec §4.2 steps 2-5).
static enum attest_status entry_request(const struct tsm_entry *e, struct attest_report_out *out,
                                        struct attest_error *err, uint8_t *aux, uint32_t vmpl,
                                        const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    char provider[ATTR_SMALL_MAX_BYTES];
    char priv[16];
    uint64_t gen_before = 0, gen_after = 0;
    size_t n = 0;
    int rc = read_text(e, "provider", provider, sizeof(provider));
    if (rc != 0 || strcmp(provider, "sev_guest") != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_UNAVAILABLE,
                                "configfs-tsm provider of %s is '%s'%s%s, not sev_guest (not an "
                                "SEV-SNP guest?)",
                                e->path, provider, rc != 0 ? ": " : "",
                                rc != 0 ? strerror(-rc) : "");
    }
    int plen = snprintf(priv, sizeof(priv), "%u", vmpl);
    rc = entry_write(e, "privlevel", priv, (size_t)plen);
    if (rc != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: writing privlevel %u to %s failed: %s (below "
                                "privlevel_floor?)",
                                vmpl, e->path, strerror(-rc));
    }
    // generation counts writes to the entry; ours is exactly one more (inblob). Anything else
    // means another process wrote this entry and outblob may answer its inblob, not ours.
    rc = read_generation(e, &gen_before);
    if (rc != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: reading generation of %s failed: %s", e->path,
                                strerror(-rc));
    }
    rc = entry_write(e, "inblob", report_data, ATTEST_REPORT_DATA_BYTES);
    if (rc != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: writing the 64-byte inblob to %s failed: %s",
                                e->path, strerror(-rc));
    }
    rc = entry_read(e, "outblob", out->report, sizeof(out->report), &n);
    if (rc != 0 || n != ATTEST_REPORT_BYTES) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: outblob of %s is not a %u-byte report (%s, %zu "
                                "bytes)",
                                e->path, ATTEST_REPORT_BYTES, rc != 0 ? strerror(-rc) : "read", n);
    }
    rc = entry_read(e, "auxblob", aux, AUXBLOB_MAX_BYTES, &n);
    if (rc == 0 && n > 0) {
        enum attest_status st = attest_certtable_parse(out, err, aux, n);
        if (st != ATTEST_OK) {
            return st;
        }
    } else if (rc != 0 && rc != -ENOENT) {
        // No auxblob (older kernels) only means no certificates; a failing one is an error.
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: reading auxblob of %s failed: %s", e->path,
                                strerror(-rc));
    }
    rc = read_generation(e, &gen_after);
    if (rc != 0 || gen_after != gen_before + 1) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm entry %s was written concurrently: generation went "
                                "from %llu to %llu across our inblob write (expected %llu); the "
                                "report may answer another request, retry",
                                e->path, (unsigned long long)gen_before,
                                (unsigned long long)gen_after,
                                (unsigned long long)(gen_before + 1));
    }
    return ATTEST_OK;
}

enum attest_status attest_tsm_request(struct attest_report_out *out, struct attest_error *err,
                                      const struct attest_tsm_fs *fs, void *fs_ctx, const char *dir,
                                      const char *name, uint32_t vmpl,
                                      const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    ASSERT(out != NULL && fs != NULL && dir != NULL && name != NULL);
    ASSERT(report_data != NULL);
    memset(out, 0, sizeof(*out));
    struct tsm_entry e = {.fs = fs, .ctx = fs_ctx};
    int len = snprintf(e.path, sizeof(e.path), "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= sizeof(e.path)) {
        return attest_error_set(err, ATTEST_CONFIG_INVALID, "configfs-tsm path %s/%s is too long",
                                dir, name);
    }
    int rc = fs->mkdir(fs_ctx, e.path);
    if (rc != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "configfs-tsm: cannot create report entry %s: %s", e.path,
                                strerror(-rc));
    }
    enum attest_status st;
    uint8_t *aux = malloc(AUXBLOB_MAX_BYTES);
    if (aux == NULL) {
        st = attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    } else {
        st = entry_request(&e, out, err, aux, vmpl, report_data);
    }
    free(aux);
    aux = NULL;
    if (st != ATTEST_OK) {
        memset(out, 0, sizeof(*out)); // never hand out a report of a failed request
    }
    // configfs removes the attributes with the entry; a failure here leaks one entry only.
    (void)fs->rmdir(fs_ctx, e.path);
    return st;
}

// ---- provider ops -----------------------------------------------------------------------------

static enum attest_status tsm_open(void **out_state, struct attest_error *err,
                                   const struct attest_provider_config *cfg) {
    *out_state = NULL;
    const char *dir = cfg->tsm_dir[0] != '\0' ? cfg->tsm_dir : "/sys/kernel/config/tsm/report";
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return attest_error_set(err, ATTEST_PROVIDER_UNAVAILABLE,
                                "no configfs-tsm: %s not found (needs Linux >= 6.7 in an SEV-SNP "
                                "guest with configfs mounted)",
                                dir);
    }
    struct tsm_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    }
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->vmpl = cfg->vmpl;
    *out_state = s;
    return ATTEST_OK;
}

static enum attest_status tsm_get_report(void *state, struct attest_report_out *out,
                                         struct attest_error *err,
                                         const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    struct tsm_state *s = state;
    char name[64];
    snprintf(name, sizeof(name), "atls-%ld-%u", (long)getpid(), s->seq++);
    return attest_tsm_request(out, err, &attest_tsm_fs_real, NULL, s->dir, name, s->vmpl,
                              report_data);
}

static void tsm_close(void *state) {
    free(state);
}

const struct attest_provider_ops attest_tsm_ops = {
    .name = "tsm",
    .open = tsm_open,
    .get_report = tsm_get_report,
    .close = tsm_close,
};
