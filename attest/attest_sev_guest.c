// attest_sev_guest.c: the sev-guest provider: SNP_GET_EXT_REPORT on /dev/sev-guest (spec §4.1).
// The request/response encoding is split out so it is unit-tested without the device.
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sev-guest.h>

#include "attest.h"
#include "attest_internal.h"
#include "core_base.h"

#define CERTS_BYTES ATTEST_SEV_GUEST_CERTS_BYTES

// The byte encoders below write the kernel's structs field by field; these pin them to the
// uapi header's layout (x86-64, the only architecture with SEV-SNP guests: little-endian).
STATIC_ASSERT(sizeof(struct snp_report_req) == ATTEST_SEV_GUEST_REQ_BYTES, "snp_report_req");
STATIC_ASSERT(sizeof(struct snp_ext_report_req) == ATTEST_SEV_GUEST_EXT_REQ_BYTES, "ext_req");
STATIC_ASSERT(offsetof(struct snp_ext_report_req, certs_address) ==
                  ATTEST_SEV_GUEST_EXT_CERTS_ADDR_OFF,
              "certs_address");
STATIC_ASSERT(offsetof(struct snp_ext_report_req, certs_len) == ATTEST_SEV_GUEST_EXT_CERTS_LEN_OFF,
              "certs_len");
STATIC_ASSERT(sizeof(struct snp_guest_request_ioctl) == ATTEST_SEV_GUEST_IOCTL_BYTES, "ioctl");
STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, req_data) == 8, "req_data");
STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, resp_data) == 16, "resp_data");
STATIC_ASSERT(offsetof(struct snp_guest_request_ioctl, exitinfo2) == 24, "exitinfo2");
STATIC_ASSERT(sizeof(struct snp_report_resp) == ATTEST_SEV_GUEST_RESP_BYTES, "snp_report_resp");
STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SEV-SNP guests are little-endian");

struct sev_guest_state {
    int fd;
    uint32_t vmpl;
    char dev[ATTEST_PATH_MAX_BYTES];
};

void attest_sev_guest_encode_req(uint8_t out[ATTEST_SEV_GUEST_REQ_BYTES],
                                 const uint8_t report_data[ATTEST_REPORT_DATA_BYTES],
                                 uint32_t vmpl) {
    memset(out, 0, ATTEST_SEV_GUEST_REQ_BYTES); // rsvd[28] (incl. KEY_SEL=0) must be zero
    memcpy(out, report_data, ATTEST_REPORT_DATA_BYTES);
    attest_put_le32(out + 64, vmpl);
}

void attest_sev_guest_encode_ext_req(uint8_t out[ATTEST_SEV_GUEST_EXT_REQ_BYTES],
                                     const uint8_t report_data[ATTEST_REPORT_DATA_BYTES],
                                     uint32_t vmpl, uint64_t certs_address, uint32_t certs_len) {
    ASSERT(certs_len % 4096u == 0 && certs_len <= ATTEST_SEV_GUEST_CERTS_BYTES);
    memset(out, 0, ATTEST_SEV_GUEST_EXT_REQ_BYTES); // incl. the tail padding after certs_len
    attest_sev_guest_encode_req(out, report_data, vmpl);
    attest_put_le64(out + ATTEST_SEV_GUEST_EXT_CERTS_ADDR_OFF, certs_address);
    attest_put_le32(out + ATTEST_SEV_GUEST_EXT_CERTS_LEN_OFF, certs_len);
}

void attest_sev_guest_encode_ioctl(uint8_t out[ATTEST_SEV_GUEST_IOCTL_BYTES], uint64_t req_data,
                                   uint64_t resp_data) {
    memset(out, 0, ATTEST_SEV_GUEST_IOCTL_BYTES);
    out[0] = ATTEST_SEV_GUEST_MSG_VERSION; // the driver rejects 0
    attest_put_le64(out + 8, req_data);
    attest_put_le64(out + 16, resp_data);
    // exitinfo2 (fw_error, vmm_error) stays 0; the driver fills it.
}

enum attest_status attest_sev_guest_parse_resp(uint8_t out_report[ATTEST_REPORT_BYTES],
                                               struct attest_error *err, const uint8_t *resp,
                                               size_t len) {
    if (len < ATTEST_SEV_GUEST_REPORT_OFF + ATTEST_REPORT_BYTES) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "SNP report response is %zu bytes, too short", len);
    }
    uint32_t status = attest_le32(resp);
    uint32_t size = attest_le32(resp + 4);
    if (status != 0) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "SEV firmware refused the report request: status 0x%x%s", status,
                                status == 0x16 ? " (INVALID_PARAM)" : "");
    }
    if (size != ATTEST_REPORT_BYTES) {
        return attest_error_set(err, ATTEST_PROVIDER_FAILED,
                                "SEV firmware returned a %u-byte report, expected %u", size,
                                ATTEST_REPORT_BYTES);
    }
    memcpy(out_report, resp + ATTEST_SEV_GUEST_REPORT_OFF, ATTEST_REPORT_BYTES);
    return ATTEST_OK;
}

static enum attest_status sg_open(void **out_state, struct attest_error *err,
                                  const struct attest_provider_config *cfg) {
    *out_state = NULL;
    const char *dev = cfg->sev_guest_dev[0] != '\0' ? cfg->sev_guest_dev : "/dev/sev-guest";
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return attest_error_set(err, ATTEST_PROVIDER_UNAVAILABLE,
                                    "no SEV-SNP guest device: %s not found (not an SEV-SNP guest, "
                                    "or the sev-guest driver is not loaded)",
                                    dev);
        }
        return attest_error_set(err, ATTEST_PROVIDER_UNAVAILABLE, "cannot open %s: %s", dev,
                                strerror(errno));
    }
    struct sev_guest_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        return attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    }
    s->fd = fd;
    s->vmpl = cfg->vmpl;
    snprintf(s->dev, sizeof(s->dev), "%s", dev);
    *out_state = s;
    return ATTEST_OK;
}

static enum attest_status sg_get_report(void *state, struct attest_report_out *out,
                                        struct attest_error *err,
                                        const uint8_t report_data[ATTEST_REPORT_DATA_BYTES]) {
    struct sev_guest_state *s = state;
    memset(out, 0, sizeof(*out));
    struct snp_ext_report_req req;
    struct snp_report_resp resp;
    struct snp_guest_request_ioctl io;
    uint8_t *certs = aligned_alloc(4096, CERTS_BYTES);
    if (certs == NULL) {
        return attest_error_set(err, ATTEST_INTERNAL, "out of memory");
    }
    memset(&resp, 0, sizeof(resp));
    memset(certs, 0, CERTS_BYTES);
    attest_sev_guest_encode_ext_req((uint8_t *)&req, report_data, s->vmpl,
                                    (uint64_t)(uintptr_t)certs, CERTS_BYTES);
    attest_sev_guest_encode_ioctl((uint8_t *)&io, (uint64_t)(uintptr_t)&req,
                                  (uint64_t)(uintptr_t)&resp);
    enum attest_status st;
    if (ioctl(s->fd, SNP_GET_EXT_REPORT, &io) != 0) {
        // WARNING: errors other than INVALID_LEN disable the VMPCK until reboot; do not retry.
        st = attest_error_set(err, ATTEST_PROVIDER_FAILED,
                              "SNP_GET_EXT_REPORT on %s failed: %s (fw_error 0x%x, vmm_error %u)",
                              s->dev, strerror(errno), io.fw_error, io.vmm_error);
    } else {
        st = attest_sev_guest_parse_resp(out->report, err, resp.data, sizeof(resp.data));
        if (st == ATTEST_OK) {
            st = attest_certtable_parse(out, err, certs, CERTS_BYTES);
        }
    }
    free(certs);
    return st;
}

static void sg_close(void *state) {
    struct sev_guest_state *s = state;
    if (s != NULL) {
        close(s->fd);
        free(s);
    }
}

const struct attest_provider_ops attest_sev_guest_ops = {
    .name = "sev-guest",
    .open = sg_open,
    .get_report = sg_get_report,
    .close = sg_close,
};
