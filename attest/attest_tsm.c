// attest_tsm.c: the tsm provider: configfs-tsm report entries (Linux >= 6.7, spec §4.2).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define AUXBLOB_MAX_BYTES (16u * 1024u)

struct tsm_state {
    char dir[ATTEST_PATH_MAX_BYTES];
    uint32_t vmpl;
    unsigned seq;
};

static int put_attr(const char *entry, const char *attr, const void *data, size_t len) {
    char path[ATTEST_PATH_MAX_BYTES + 96];
    snprintf(path, sizeof(path), "%s/%s", entry, attr);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = write(fd, data, len);
    int rc = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return rc;
}

static int get_attr(const char *entry, const char *attr, uint8_t *buf, size_t cap,
                    size_t *out_len) {
    char path[ATTEST_PATH_MAX_BYTES + 96];
    snprintf(path, sizeof(path), "%s/%s", entry, attr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t off = 0;
    ssize_t n;
    while (off < cap && (n = read(fd, buf + off, cap - off)) > 0) {
        off += (size_t)n;
    }
    close(fd);
    *out_len = off;
    return 0;
}

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
    memset(out, 0, sizeof(*out));
    char entry[ATTEST_PATH_MAX_BYTES + 64];
    snprintf(entry, sizeof(entry), "%s/atls-%ld-%u", s->dir, (long)getpid(), s->seq++);
    if (mkdir(entry, 0700) != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED, "cannot create %s: %s", entry,
                                strerror(errno));
    }
    enum attest_status st = ATTEST_OK;
    char gen_before[32] = {0}, gen_after[32] = {0}, provider[32] = {0}, priv[16];
    size_t n = 0;
    uint8_t *aux = malloc(AUXBLOB_MAX_BYTES);
    int plen = snprintf(priv, sizeof(priv), "%u", s->vmpl);
    if (aux == NULL) {
        st = attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    } else if (get_attr(entry, "provider", (uint8_t *)provider, sizeof(provider) - 1, &n) != 0 ||
               strncmp(provider, "sev_guest", 9) != 0) {
        st = attest_error_set(err, ATTEST_PROVIDER_UNAVAILABLE,
                              "configfs-tsm provider is '%s', not sev_guest", provider);
    } else if (put_attr(entry, "privlevel", priv, (size_t)plen) != 0 ||
               get_attr(entry, "generation", (uint8_t *)gen_before, sizeof(gen_before) - 1,
                        &n) != 0 ||
               put_attr(entry, "inblob", report_data, ATTEST_REPORT_DATA_BYTES) != 0 ||
               get_attr(entry, "outblob", out->report, sizeof(out->report), &n) != 0 ||
               n != ATTEST_REPORT_BYTES) {
        st = attest_error_set(err, ATTEST_PROVIDER_FAILED,
                              "configfs-tsm report request in %s failed (outblob %zu bytes)",
                              entry, n);
    } else if (get_attr(entry, "auxblob", aux, AUXBLOB_MAX_BYTES, &n) == 0 && n > 0) {
        st = attest_certtable_parse(out, err, aux, n);
    }
    if (st == ATTEST_OK &&
        (get_attr(entry, "generation", (uint8_t *)gen_after, sizeof(gen_after) - 1, &n) != 0 ||
         strtoul(gen_after, NULL, 10) != strtoul(gen_before, NULL, 10) + 1)) {
        st = attest_error_set(err, ATTEST_PROVIDER_FAILED,
                              "configfs-tsm entry %s was written concurrently; retry", entry);
    }
    free(aux);
    rmdir(entry);
    return st;
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
