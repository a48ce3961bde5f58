// atlsctl_attest.c: `atlsctl nonce`, `atlsctl client-cert` and `atlsctl report show|verify`:
// fetch a nonce, make an evidence-carrying client certificate, inspect and verify reports.
// Exit status: 0 success, 1 failed (verification or operation), 2 usage error.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atlsctl.h"
#include "attest.h"
#include "core_base.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define FILE_MAX_BYTES (64u * 1024u)

// ---- small helpers ----------------------------------------------------------------------------

static int usage_error(const char *fmt, const char *arg) {
    fputs("atlsctl: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

// read_file reads at most FILE_MAX_BYTES of `path` into a fresh buffer (caller frees).
static uint8_t *read_file(const char *path, size_t *out_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "atlsctl: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = malloc(FILE_MAX_BYTES + 1);
    size_t off = 0;
    ssize_t n = 0;
    while (buf != NULL && off <= FILE_MAX_BYTES &&
           (n = read(fd, buf + off, FILE_MAX_BYTES + 1 - off)) > 0) {
        off += (size_t)n;
    }
    close(fd);
    if (buf == NULL || n < 0 || off > FILE_MAX_BYTES) {
        fprintf(stderr, "atlsctl: cannot read %s (larger than %u bytes or I/O error)\n", path,
                FILE_MAX_BYTES);
        free(buf);
        return NULL;
    }
    buf[off] = '\0'; // PEM parsing may treat it as text
    *out_len = off;
    return buf;
}

static int write_file(const char *path, const char *data, size_t len, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        // Never chmod a device or pipe (e.g. /dev/null): only regular files take key material.
        fprintf(stderr, "atlsctl: %s is not a regular file\n", path);
        close(fd);
        return -1;
    }
    if (fd < 0 || fchmod(fd, mode) != 0) {
        fprintf(stderr, "atlsctl: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n <= 0) {
            fprintf(stderr, "atlsctl: writing %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return close(fd);
}

// parse_hex decodes an even-length hex string of `min`..`max` bytes into `out`.
static bool parse_hex(uint8_t *out, size_t *out_len, size_t min, size_t max, const char *s) {
    size_t n = strlen(s);
    if (n % 2 != 0 || n / 2 < min || n / 2 > max) {
        return false;
    }
    if (core_base_hex_decode(out, n / 2, s) != 0) {
        return false;
    }
    *out_len = n / 2;
    return true;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static void print_hex(const char *label, const uint8_t *p, size_t n) {
    char hex[2 * 128 + 1];
    ASSERT(n <= 128);
    core_base_hex_encode(hex, p, n);
    printf("%-20s %s\n", label, hex);
}

// ---- nonce ------------------------------------------------------------------------------------

// fetch_nonce GETs the nonce and decodes its hex into `out`.
static int fetch_nonce(const char *url, uint8_t *out, size_t *out_len) {
    char *resp = NULL;
    size_t resp_len = 0;
    char full[1024];
    // The URL names the gateway's API; the nonce path is added when it names only the host.
    const char *slash = strchr(url + (strncmp(url, "http://", 7) == 0 ? 7 : 0), '/');
    snprintf(full, sizeof(full), "%s%s", url, slash == NULL || strcmp(slash, "/") == 0
                                                  ? (slash == NULL ? "/api/v1/nonce" : "api/v1/nonce")
                                                  : "");
    int rc = atlsctl_http_get(full, "application/json", &resp, &resp_len);
    const char *body = rc == 0 ? resp : NULL;
    const char *key = body == NULL ? NULL : strstr(body, "\"nonce\"");
    const char *q = key == NULL ? NULL : strchr(key + 7, '"');
    char hex[2 * ATTEST_NONCE_MAX_BYTES + 1];
    size_t hl = q == NULL ? 0 : strspn(q + 1, "0123456789abcdefABCDEF");
    if (rc == 0 && (q == NULL || q[1 + hl] != '"' || hl >= sizeof(hex))) {
        fprintf(stderr, "atlsctl: %s returned no \"nonce\" hex string\n", url);
        rc = -EPROTO;
    }
    if (rc == 0) {
        memcpy(hex, q + 1, hl);
        hex[hl] = '\0';
        if (!parse_hex(out, out_len, ATTEST_NONCE_MIN_BYTES, ATTEST_NONCE_MAX_BYTES, hex)) {
            fprintf(stderr, "atlsctl: nonce from %s is not 16..64 bytes of hex\n", url);
            rc = -EPROTO;
        }
    }
    free(resp);
    return rc;
}

static int cmd_nonce(int argc, char **argv) {
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else {
            return usage_error("nonce: unknown or incomplete option '%s' (usage: atlsctl nonce "
                               "--url http://127.0.0.1:8081)",
                               argv[i]);
        }
    }
    if (url == NULL) {
        url = "http://127.0.0.1:8081";
    }
    uint8_t nonce[ATTEST_NONCE_MAX_BYTES];
    size_t len = 0;
    if (fetch_nonce(url, nonce, &len) != 0) {
        return EXIT_FAIL;
    }
    char hex[2 * ATTEST_NONCE_MAX_BYTES + 1];
    core_base_hex_encode(hex, nonce, len);
    printf("%s\n", hex);
    return 0;
}

// ---- client-cert ------------------------------------------------------------------------------

struct cc_opts {
    const char *nonce_url, *nonce_hex, *provider, *out_cert, *out_key;
    enum attest_cert_key_type key_type;
    uint64_t validity_s;
    bool bind_other_key; // for tests: the report binds another key than the certificate's
    bool help;
};

static void cc_usage(FILE *out) {
    fputs("usage: atlsctl client-cert (--nonce-url URL | --nonce HEX) --provider NAME\n"
          "                           --out-cert FILE --out-key FILE [options]\n"
          "  --nonce-url URL      fetch a nonce from a gateway's API (http://127.0.0.1:8081)\n"
          "  --nonce HEX          use this nonce (32..128 hex digits)\n"
          "  --provider NAME      simulated | tsm | sev-guest\n"
          "  --key-type TYPE      ed25519 (default) | p256\n"
          "  --validity SECONDS   certificate lifetime (default 86400)\n"
          "simulated provider only (chosen report fields):\n"
          "  --sim-dir DIR        the simulated AMD hierarchy (created if absent)\n"
          "  --measurement HEX    96 hex digits\n"
          "  --chip-id HEX        128 hex digits\n"
          "  --tcb BL,TEE,SNP,UCODE\n"
          "  --svn N              guest SVN\n"
          "  --vmpl N             0..3\n"
          "  --debug              guest policy allows debugging\n"
          "  --smt                SMT enabled on the host\n"
          "for tests:\n"
          "  --bind-other-key     the report binds a different key than the certificate's, so a\n"
          "                       gateway must refuse it (BINDING_MISMATCH)\n"
          "  --sim-vcek-validity SECONDS\n"
          "                       the simulated VCEK expires this long from now (default 7\n"
          "                       years), so a gateway must refuse it after that (CERT_EXPIRED)\n",
          out);
}

static int parse_tcb(struct attest_sim_params *p, const char *s) {
    unsigned v[4];
    char tail;
    if (sscanf(s, "%u,%u,%u,%u%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4 || v[0] > 127 ||
        v[1] > 127 || v[2] > 127 || v[3] > 255) {
        return -1;
    }
    p->tcb_bl = (uint8_t)v[0];
    p->tcb_tee = (uint8_t)v[1];
    p->tcb_snp = (uint8_t)v[2];
    p->tcb_ucode = (uint8_t)v[3];
    return 0;
}

static int cc_parse(struct cc_opts *o, struct attest_provider_config *cfg, int argc, char **argv) {
    size_t n = 0;
    uint64_t v = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = strcmp(a, "--debug") == 0 || strcmp(a, "--smt") == 0 ||
                    strcmp(a, "--bind-other-key") == 0 || strcmp(a, "--help") == 0 ||
                    strcmp(a, "-h") == 0;
        if (!flag && val == NULL) {
            return usage_error("client-cert: option '%s' needs a value (or is unknown)", a);
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
            return 0;
        } else if (strcmp(a, "--bind-other-key") == 0) {
            o->bind_other_key = true;
        } else if (strcmp(a, "--debug") == 0) {
            cfg->sim.policy |= ATTEST_POLICY_DEBUG;
        } else if (strcmp(a, "--smt") == 0) {
            // A simulated host with SMT on: the guest allows it (POLICY bit 16) and the platform
            // reports it enabled (PLATFORM_INFO.SMT_EN), which is what policy checks.
            cfg->sim.policy |= ATTEST_POLICY_SMT;
            cfg->sim.platform_info |= 1u;
        } else if (strcmp(a, "--nonce-url") == 0) {
            o->nonce_url = val;
        } else if (strcmp(a, "--nonce") == 0) {
            o->nonce_hex = val;
        } else if (strcmp(a, "--provider") == 0) {
            o->provider = val;
        } else if (strcmp(a, "--sim-dir") == 0) {
            snprintf(cfg->sim_dir, sizeof(cfg->sim_dir), "%s", val);
        } else if (strcmp(a, "--measurement") == 0) {
            if (!parse_hex(cfg->sim.measurement, &n, 48, 48, val)) {
                return usage_error("client-cert: --measurement must be 96 hex digits, got '%s'",
                                   val);
            }
        } else if (strcmp(a, "--chip-id") == 0) {
            if (!parse_hex(cfg->sim.chip_id, &n, 64, 64, val)) {
                return usage_error("client-cert: --chip-id must be 128 hex digits, got '%s'", val);
            }
        } else if (strcmp(a, "--tcb") == 0) {
            if (parse_tcb(&cfg->sim, val) != 0) {
                return usage_error("client-cert: --tcb must be bl,tee,snp,ucode (0..127, ucode "
                                   "0..255), got '%s'",
                                   val);
            }
        } else if (strcmp(a, "--svn") == 0) {
            if (!parse_u64(val, UINT32_MAX, &v)) {
                return usage_error("client-cert: --svn must be a 32-bit number, got '%s'", val);
            }
            cfg->sim.guest_svn = (uint32_t)v;
        } else if (strcmp(a, "--vmpl") == 0) {
            if (!parse_u64(val, 3, &v)) {
                return usage_error("client-cert: --vmpl must be 0..3, got '%s'", val);
            }
            cfg->sim.vmpl = (uint32_t)v;
            cfg->vmpl = (uint32_t)v;
        } else if (strcmp(a, "--sim-vcek-validity") == 0) {
            if (!parse_u64(val, 366u * 86400u, &v) || v == 0) {
                return usage_error("client-cert: --sim-vcek-validity must be 1..31622400 "
                                   "seconds, got '%s'",
                                   val);
            }
            cfg->sim.vcek_valid_s = (uint32_t)v;
        } else if (strcmp(a, "--validity") == 0) {
            if (!parse_u64(val, 366u * 86400u, &v) || v == 0) {
                return usage_error("client-cert: --validity must be 1..31622400 seconds, got "
                                   "'%s'",
                                   val);
            }
            o->validity_s = v;
        } else if (strcmp(a, "--key-type") == 0) {
            if (strcmp(val, "ed25519") == 0) {
                o->key_type = ATTEST_CERT_KEY_ED25519;
            } else if (strcmp(val, "p256") == 0) {
                o->key_type = ATTEST_CERT_KEY_P256;
            } else {
                return usage_error("client-cert: --key-type must be ed25519 or p256, got '%s'",
                                   val);
            }
        } else if (strcmp(a, "--out-cert") == 0) {
            o->out_cert = val;
        } else if (strcmp(a, "--out-key") == 0) {
            o->out_key = val;
        } else {
            return usage_error("client-cert: unknown option '%s'", a);
        }
        i += flag ? 0 : 1;
    }
    if ((o->nonce_url == NULL) == (o->nonce_hex == NULL)) {
        return usage_error("client-cert: give exactly one of --nonce-url URL or --nonce HEX%s", "");
    }
    if (o->provider == NULL || o->out_cert == NULL || o->out_key == NULL) {
        return usage_error("client-cert: --provider, --out-cert and --out-key are required%s", "");
    }
    return 0;
}

static int cmd_client_cert(int argc, char **argv) {
    struct cc_opts o = {.key_type = ATTEST_CERT_KEY_ED25519, .validity_s = 86400};
    struct attest_provider_config cfg;
    attest_provider_config_init(&cfg);
    cfg.sim.policy = ATTEST_POLICY_RESERVED_1; // --smt / --debug add bits
    int rc = cc_parse(&o, &cfg, argc, argv);
    if (rc != 0) {
        return rc;
    }
    if (o.help) {
        cc_usage(stdout);
        return 0;
    }
    const struct attest_provider_ops *ops = attest_provider_find(o.provider);
    if (ops == NULL) {
        return usage_error("client-cert: unknown provider '%s' (simulated, tsm, sev-guest)",
                           o.provider);
    }
    uint8_t nonce[ATTEST_NONCE_MAX_BYTES];
    size_t nonce_len = 0;
    if (o.nonce_hex != NULL && !parse_hex(nonce, &nonce_len, ATTEST_NONCE_MIN_BYTES,
                                          ATTEST_NONCE_MAX_BYTES, o.nonce_hex)) {
        return usage_error("client-cert: --nonce must be 32..128 hex digits, got '%s'",
                           o.nonce_hex);
    }
    if (o.nonce_url != NULL && fetch_nonce(o.nonce_url, nonce, &nonce_len) != 0) {
        return EXIT_FAIL;
    }
    struct attest_client_cert cert = {0};
    struct attest_error err = {0};
    enum attest_status st =
        o.bind_other_key
            ? attest_cert_make_misbound(&cert, &err, ops, &cfg, o.key_type, nonce, nonce_len,
                                        (int64_t)o.validity_s)
            : attest_cert_make(&cert, &err, ops, &cfg, o.key_type, nonce, nonce_len,
                               (int64_t)o.validity_s);
    if (st != ATTEST_OK) {
        fprintf(stderr, "atlsctl: client-cert: %s: %s\n", attest_status_code(err.status), err.msg);
        return EXIT_FAIL;
    }
    rc = write_file(o.out_key, cert.key_pem, cert.key_pem_len, 0600) == 0 &&
                 write_file(o.out_cert, cert.cert_pem, cert.cert_pem_len, 0644) == 0
             ? 0
             : EXIT_FAIL;
    if (rc == 0) {
        printf("wrote %s and %s (provider %s)\n", o.out_cert, o.out_key, o.provider);
    }
    attest_cert_cleanup(&cert);
    return rc;
}

// ---- report show / verify ---------------------------------------------------------------------

// struct loaded: a report file (raw .bin) or a certificate (PEM or DER) carrying evidence.
struct loaded {
    bool from_cert;
    struct attest_evidence ev;
};

static int load_input(struct loaded *out, const char *path) {
    memset(out, 0, sizeof(*out));
    size_t len = 0;
    uint8_t *buf = read_file(path, &len);
    if (buf == NULL) {
        return EXIT_FAIL;
    }
    int rc = 0;
    struct attest_error err = {0};
    if (len == ATTEST_REPORT_BYTES) {
        memcpy(out->ev.report, buf, len);
    } else {
        uint8_t *der = buf;
        size_t der_len = len;
        uint8_t *conv = NULL;
        if (strstr((const char *)buf, "-----BEGIN CERTIFICATE-----") != NULL) {
            conv = malloc(FILE_MAX_BYTES);
            if (conv == NULL ||
                attest_cert_pem_to_der(conv, FILE_MAX_BYTES, &der_len, (const char *)buf, len) !=
                    0) {
                fprintf(stderr, "atlsctl: %s: PEM certificate does not parse\n", path);
                rc = EXIT_FAIL;
            }
            der = conv;
        }
        if (rc == 0 && attest_evidence_from_cert(&out->ev, &err, der, der_len) != ATTEST_OK) {
            fprintf(stderr,
                    "atlsctl: %s is neither a %u-byte raw report nor a certificate with "
                    "evidence: %s\n",
                    path, ATTEST_REPORT_BYTES, err.msg);
            rc = EXIT_FAIL;
        }
        out->from_cert = rc == 0;
        free(conv);
    }
    free(buf);
    return rc;
}

static void print_tcb(const char *label, const struct attest_tcb *t, bool turin) {
    printf("%-20s 0x%016llx (", label, (unsigned long long)t->raw);
    if (turin) {
        printf("fmc=%u ", t->fmc);
    }
    printf("bl=%u tee=%u snp=%u ucode=%u)\n", t->bl, t->tee, t->snp, t->ucode);
}

static void print_claims(const struct attest_claims *c) {
    bool turin = c->product == ATTEST_PRODUCT_TURIN;
    printf("%-20s %u\n", "version", c->version);
    printf("%-20s %u\n", "guest_svn", c->guest_svn);
    printf("%-20s 0x%llx (abi %u.%u%s%s%s)\n", "policy", (unsigned long long)c->policy,
           c->abi_major, c->abi_minor, c->smt_allowed ? ", smt" : "",
           c->migrate_ma ? ", migrate_ma" : "", c->debug ? ", DEBUG" : "");
    printf("%-20s %s\n", "debug", c->debug ? "yes" : "no");
    print_hex("family_id", c->family_id, 16);
    print_hex("image_id", c->image_id, 16);
    printf("%-20s %u\n", "vmpl", c->vmpl);
    printf("%-20s %u\n", "signature_algo", c->signature_algo);
    printf("%-20s 0x%llx\n", "platform_info", (unsigned long long)c->platform_info);
    printf("%-20s 0x%x (%s%s)\n", "signer_info", c->signer_info,
           c->signer == ATTEST_SIGNER_VLEK ? "VLEK" : "VCEK",
           c->author_key_en ? ", author key" : "");
    print_hex("report_data", c->report_data, 64);
    print_hex("measurement", c->measurement, 48);
    print_hex("host_data", c->host_data, 32);
    print_hex("id_key_digest", c->id_key_digest, 48);
    print_hex("author_key_digest", c->author_key_digest, 48);
    print_hex("report_id", c->report_id, 32);
    print_hex("report_id_ma", c->report_id_ma, 32);
    print_tcb("current_tcb", &c->current_tcb, turin);
    print_tcb("reported_tcb", &c->reported_tcb, turin);
    print_tcb("committed_tcb", &c->committed_tcb, turin);
    print_tcb("launch_tcb", &c->launch_tcb, turin);
    if (c->version >= 3) {
        printf("%-20s fam 0x%02x mod 0x%02x step 0x%02x\n", "cpuid", c->cpuid_fam, c->cpuid_mod,
               c->cpuid_step);
    }
    printf("%-20s %s\n", "product", attest_product_name(c->product));
    print_hex("chip_id", c->chip_id, 64);
    if (c->signer == ATTEST_SIGNER_VCEK) {
        // Where the verifier looks for this report's VCEK in [chain] vcek_dir (evidence without
        // its VCEK): fetch it from AMD KDS for this chip and reported TCB, store it as this.
        char name[160]; // 128 hex, "-", 16 hex, ".der"
        if (attest_report_vcek_file_name(name, sizeof(name), c) == 0) {
            printf("%-20s %s\n", "vcek_file", name);
        }
    }
    printf("%-20s %u.%u.%u\n", "current_fw", c->current_major, c->current_minor,
           c->current_build);
    printf("%-20s %u.%u.%u\n", "committed_fw", c->committed_major, c->committed_minor,
           c->committed_build);
    if (c->version >= 5) {
        printf("%-20s 0x%llx\n", "launch_mit_vector", (unsigned long long)c->launch_mit_vector);
        printf("%-20s 0x%llx\n", "current_mit_vector", (unsigned long long)c->current_mit_vector);
    }
}

// print_signature prints the report's ECDSA r and s as big-endian hex of the 48-byte P-384
// integers (the report stores each little-endian in 72 bytes at 0x2A0 / 0x2E8; the parser has
// already required the top 24 bytes to be zero).
static void print_signature(const uint8_t report[ATTEST_REPORT_BYTES]) {
    static const struct {
        const char *label;
        size_t off;
    } parts[] = {{"signature_r", 0x2A0u}, {"signature_s", 0x2E8u}};
    for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
        uint8_t be[48];
        for (size_t j = 0; j < sizeof(be); j++) {
            be[j] = report[parts[i].off + sizeof(be) - 1 - j];
        }
        print_hex(parts[i].label, be, sizeof(be));
    }
}

static void print_evidence(const struct attest_evidence *ev) {
    print_hex("evidence.nonce", ev->nonce, ev->nonce_len);
    print_hex("evidence.spki_sha256", ev->spki_sha256, 32);
    printf("%-20s %s\n", "evidence.binding",
           attest_evidence_check_binding(ev, NULL) == ATTEST_OK ? "ok" : "MISMATCH");
    struct attest_vcek_info info;
    if (ev->vcek_len > 0 && attest_vcek_parse(&info, NULL, ev->vcek_der, ev->vcek_len) ==
                                ATTEST_OK) {
        printf("%-20s %s issued by %s, product %s, spl bl=%llu tee=%llu snp=%llu ucode=%llu\n",
               "evidence.vcek", info.signer == ATTEST_SIGNER_VLEK ? "VLEK" : "VCEK",
               info.issuer_cn, info.product_name, (unsigned long long)info.bl,
               (unsigned long long)info.tee, (unsigned long long)info.snp,
               (unsigned long long)info.ucode);
    } else {
        printf("%-20s %s\n", "evidence.vcek", ev->vcek_len > 0 ? "unparsable" : "absent");
    }
    printf("%-20s %s\n", "evidence.chain", ev->chain_len > 0 ? "present" : "absent");
}

static int cmd_report_show(int argc, char **argv) {
    if (argc != 3) {
        return usage_error("usage: atlsctl report show FILE%s", "");
    }
    struct loaded *in = malloc(sizeof(*in));
    if (in == NULL) {
        return EXIT_FAIL;
    }
    int rc = load_input(in, argv[2]);
    struct attest_claims c;
    struct attest_error err = {0};
    if (rc == 0 && attest_report_parse(&c, &err, in->ev.report, ATTEST_REPORT_BYTES) !=
                       ATTEST_OK) {
        fprintf(stderr, "atlsctl: %s: %s: %s\n", argv[2], attest_status_code(err.status),
                err.msg);
        rc = EXIT_FAIL;
    }
    if (rc == 0) {
        print_claims(&c);
        print_signature(in->ev.report);
        if (in->from_cert) {
            print_evidence(&in->ev);
        }
    }
    free(in);
    return rc;
}

struct verify_opts {
    const char *vcek, *roots, *nonce_hex;
    int64_t at;
};

static int verify_parse(struct verify_opts *o, int argc, char **argv) {
    o->roots = "builtin";
    o->at = (int64_t)time(NULL);
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t v = 0;
        if (val == NULL) {
            return usage_error("report verify: option '%s' needs a value (or is unknown)", a);
        }
        if (strcmp(a, "--vcek") == 0) {
            o->vcek = val;
        } else if (strcmp(a, "--roots") == 0) {
            o->roots = val;
        } else if (strcmp(a, "--nonce") == 0) {
            o->nonce_hex = val;
        } else if (strcmp(a, "--at") == 0) {
            if (!parse_u64(val, INT64_MAX, &v)) {
                return usage_error("report verify: --at must be a Unix time, got '%s'", val);
            }
            o->at = (int64_t)v;
        } else {
            return usage_error("report verify: unknown option '%s'", a);
        }
        i++;
    }
    return 0;
}

// load_vcek reads a DER or PEM VCEK into `ev`.
static int load_vcek(struct attest_evidence *ev, const char *path) {
    size_t len = 0;
    uint8_t *buf = read_file(path, &len);
    if (buf == NULL) {
        return EXIT_FAIL;
    }
    int rc = 0;
    if (strstr((const char *)buf, "-----BEGIN CERTIFICATE-----") != NULL) {
        if (attest_cert_pem_to_der(ev->vcek_der, sizeof(ev->vcek_der), &ev->vcek_len,
                                   (const char *)buf, len) != 0) {
            fprintf(stderr, "atlsctl: %s: PEM certificate does not parse\n", path);
            rc = EXIT_FAIL;
        }
    } else if (len > sizeof(ev->vcek_der)) {
        fprintf(stderr, "atlsctl: %s is too large for a VCEK\n", path);
        rc = EXIT_FAIL;
    } else {
        memcpy(ev->vcek_der, buf, len);
        ev->vcek_len = len;
    }
    free(buf);
    return rc;
}

static int cmd_report_verify(int argc, char **argv) {
    if (argc < 3 || argv[2][0] == '-') {
        return usage_error("usage: atlsctl report verify FILE [--vcek F] [--roots builtin|PEM] "
                           "[--at UNIXTIME] [--nonce HEX]%s",
                           "");
    }
    struct verify_opts o = {0};
    int rc = verify_parse(&o, argc, argv);
    if (rc != 0) {
        return rc;
    }
    uint8_t want_nonce[ATTEST_NONCE_MAX_BYTES];
    size_t want_len = 0;
    if (o.nonce_hex != NULL && !parse_hex(want_nonce, &want_len, ATTEST_NONCE_MIN_BYTES,
                                          ATTEST_NONCE_MAX_BYTES, o.nonce_hex)) {
        return usage_error("report verify: --nonce must be 32..128 hex digits, got '%s'",
                           o.nonce_hex);
    }
    struct loaded *in = malloc(sizeof(*in));
    struct attest_verifier *v = NULL;
    struct attest_claims c;
    struct attest_error err = {0};
    enum attest_status st = ATTEST_INTERNAL;
    if (in == NULL || (rc = load_input(in, argv[2])) != 0 ||
        (o.vcek != NULL && (rc = load_vcek(&in->ev, o.vcek)) != 0)) {
        rc = EXIT_FAIL;
        goto out;
    }
    struct attest_verifier_config cfg = {0};
    snprintf(cfg.roots, sizeof(cfg.roots), "%s", o.roots);
    v = attest_verifier_new(&cfg, &err);
    if (v == NULL) {
        fprintf(stderr, "atlsctl: %s: %s\n", attest_status_code(err.status), err.msg);
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.nonce_hex != NULL && (!in->from_cert || want_len != in->ev.nonce_len ||
                                memcmp(want_nonce, in->ev.nonce, want_len) != 0)) {
        st = attest_error_set(&err, ATTEST_BINDING_MISMATCH,
                              "the evidence does not carry the expected nonce %s",
                              o.nonce_hex);
    } else if (in->from_cert) {
        st = attest_verifier_verify_evidence(v, &c, &err, &in->ev, o.at);
    } else {
        st = attest_verifier_verify_report(v, &c, &err, in->ev.report, ATTEST_REPORT_BYTES,
                                           in->ev.vcek_len ? in->ev.vcek_der : NULL,
                                           in->ev.vcek_len, NULL, 0, o.at);
    }
    if (st == ATTEST_OK) {
        char m[97];
        core_base_hex_encode(m, c.measurement, 48);
        printf("VERIFIED: %s report v%u, signed by %s, chain to %s roots at %lld\n",
               attest_product_name(c.product), c.version,
               c.signer == ATTEST_SIGNER_VLEK ? "VLEK" : "VCEK", o.roots, (long long)o.at);
        printf("measurement %s\n", m);
        if (c.debug) {
            printf("note: DEBUG policy bit is set (policy decides; production should deny)\n");
        }
        rc = 0;
    } else {
        printf("NOT VERIFIED: %s: %s\n", attest_status_code(st), err.msg);
        rc = EXIT_FAIL;
    }
out:
    attest_verifier_free(v);
    free(in);
    return rc;
}

// wants_help reports whether an argument after the first `skip` asks for help.
static bool wants_help(int argc, char **argv, int skip) {
    for (int i = skip; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

int atlsctl_attest_main(int argc, char **argv) {
    ASSERT(argc >= 1);
    const char *cmd = argv[0];
    static const struct {
        const char *cmd, *sub, *text;
    } helps[] = {
        {"nonce", NULL,
         "usage: atlsctl nonce [--url URL]\n"
         "  prints a fresh nonce (hex) from the gateway's API (default http://127.0.0.1:8081)\n"},
        {"report", "show",
         "usage: atlsctl report show FILE\n"
         "  decodes FILE: a raw SNP report (1184 bytes) or an evidence certificate (PEM or DER);\n"
         "  vcek_file is the name the gateway looks for in [chain] vcek_dir for this report\n"},
        {"report", "verify",
         "usage: atlsctl report verify FILE [--vcek F] [--roots builtin|PEM] [--at UNIXTIME] "
         "[--nonce HEX]\n"
         "  verifies FILE (a raw report, or an evidence certificate with its binding) against the\n"
         "  AMD roots (default builtin) at UNIXTIME (default now); --nonce: the evidence must carry\n"
         "  this nonce. Exit 0 verified, 1 not verified, 2 usage\n"},
    };
    for (size_t i = 0; i < ARRAY_LEN(helps); i++) {
        bool sub_ok = helps[i].sub == NULL ||
                      (argc >= 2 && strcmp(argv[1], helps[i].sub) == 0);
        if (strcmp(cmd, helps[i].cmd) == 0 && sub_ok &&
            wants_help(argc, argv, helps[i].sub == NULL ? 1 : 2)) {
            fputs(helps[i].text, stdout);
            return 0;
        }
    }
    if (strcmp(cmd, "nonce") == 0) {
        return cmd_nonce(argc, argv);
    }
    if (strcmp(cmd, "client-cert") == 0) {
        return cmd_client_cert(argc, argv);
    }
    if (strcmp(cmd, "report") == 0 && argc >= 2 && strcmp(argv[1], "show") == 0) {
        return cmd_report_show(argc, argv);
    }
    if (strcmp(cmd, "report") == 0 && argc >= 2 && strcmp(argv[1], "verify") == 0) {
        return cmd_report_verify(argc, argv);
    }
    return usage_error("unknown subcommand '%s' (nonce, client-cert, report show|verify)",
                       argc >= 2 ? argv[1] : cmd);
}
