// core_pgwire.c: PostgreSQL wire protocol front end: pre-startup sniffing, ErrorResponse,
// StartupMessage parsing. Pure functions over byte buffers; no I/O.
#include "core_internal.h"

uint32_t core_pgwire_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void core_pgwire_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

enum core_pgwire_sniff core_pgwire_sniff(const uint8_t *buf, uint32_t len) {
    if (len == 0) {
        return CORE_SNIFF_NEED_MORE;
    }
    if (buf[0] == 0x16) {
        return CORE_SNIFF_DIRECT_TLS;
    }
    if (len < 8) {
        // A pre-startup packet always starts with a big-endian length whose first byte is 0
        // for every legal size; anything else cannot become valid.
        return buf[0] == 0 ? CORE_SNIFF_NEED_MORE : CORE_SNIFF_PLAINTEXT;
    }
    uint32_t plen = core_pgwire_be32(buf);
    uint32_t code = core_pgwire_be32(buf + 4);
    if (plen == 8 && code == CORE_PG_SSL_REQUEST) {
        return CORE_SNIFF_SSL_REQUEST;
    }
    if (plen == 8 && code == CORE_PG_GSSENC_REQUEST) {
        return CORE_SNIFF_GSSENC_REQUEST;
    }
    if (plen == 16 && code == CORE_PG_CANCEL_REQUEST) {
        return len >= 16 ? CORE_SNIFF_CANCEL : CORE_SNIFF_NEED_MORE;
    }
    return CORE_SNIFF_PLAINTEXT;
}

static uint32_t put_field(uint8_t *out, uint32_t at, uint32_t cap, char tag, const char *s) {
    size_t n = strlen(s);
    if (at + 1 + n + 1 > cap) {
        return 0;
    }
    out[at++] = (uint8_t)tag;
    memcpy(out + at, s, n);
    at += (uint32_t)n;
    out[at++] = 0;
    return at;
}

uint32_t core_pgwire_error(uint8_t *out, uint32_t cap, const char *sqlstate, const char *msg) {
    ASSERT(out != NULL && sqlstate != NULL && msg != NULL);
    ASSERT(strlen(sqlstate) == 5);
    if (cap < 5) {
        return 0;
    }
    uint32_t at = 5;
    at = put_field(out, at, cap, 'S', "FATAL");
    at = at ? put_field(out, at, cap, 'V', "FATAL") : 0;
    at = at ? put_field(out, at, cap, 'C', sqlstate) : 0;
    at = at ? put_field(out, at, cap, 'M', msg) : 0;
    if (at == 0 || at + 1 > cap) {
        return 0;
    }
    out[at++] = 0;
    out[0] = 'E';
    core_pgwire_put_be32(out + 1, at - 1);
    return at;
}

// escape_invalid_utf8 writes `in` (`len` bytes) into `out` (`cap` bytes, NUL-terminated,
// truncated at a whole sequence) as valid UTF-8: valid sequences as they are, every other byte
// as the four characters \xNN. It serves the records of a refused name, so an operator sees
// what was sent; such a name is never compared with a policy.
static void escape_invalid_utf8(char *out, size_t cap, const uint8_t *in, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = core_base_utf8_seq_len(in + i, len - i);
        size_t need = n == 0 ? 4 : n;
        if (o + need >= cap) {
            break;
        }
        if (n == 0) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[in[i] >> 4];
            out[o++] = hex[in[i] & 0xf];
            i++;
        } else {
            memcpy(out + o, in + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

enum core_pgwire_startup core_pgwire_startup(const uint8_t *buf, uint32_t len, uint32_t *out_len,
                                             char *user, size_t user_cap, char *database,
                                             size_t db_cap, const char **reason) {
    *reason = NULL;
    if (len < 8) {
        return CORE_STARTUP_NEED_MORE;
    }
    uint32_t plen = core_pgwire_be32(buf);
    uint32_t code = core_pgwire_be32(buf + 4);
    if (plen < 8 || plen > CORE_STARTUP_BYTES_MAX) {
        *reason = "invalid startup packet length";
        return CORE_STARTUP_BAD;
    }
    if (code == CORE_PG_CANCEL_REQUEST) {
        if (plen != 16) {
            *reason = "invalid cancel request length";
            return CORE_STARTUP_BAD;
        }
        if (len < 16) {
            return CORE_STARTUP_NEED_MORE;
        }
        *out_len = 16;
        return CORE_STARTUP_CANCEL;
    }
    if (code == CORE_PG_SSL_REQUEST || code == CORE_PG_GSSENC_REQUEST) {
        *reason = "encryption request inside an encrypted connection";
        return CORE_STARTUP_BAD;
    }
    if ((code >> 16) != 3) {
        *reason = "unsupported frontend protocol (this server speaks 3.0)";
        return CORE_STARTUP_VERSION;
    }
    if (len < plen) {
        return CORE_STARTUP_NEED_MORE;
    }
    // Parameters: name\0value\0 ... \0
    user[0] = '\0';
    database[0] = '\0';
    uint32_t at = 8;
    bool terminated = false;
    while (at < plen) {
        if (buf[at] == 0) {
            terminated = (at == plen - 1);
            break;
        }
        const uint8_t *name = buf + at;
        const uint8_t *nend = memchr(name, 0, plen - at);
        if (nend == NULL) {
            break;
        }
        at = (uint32_t)(nend - buf) + 1;
        if (at >= plen) {
            break;
        }
        const uint8_t *val = buf + at;
        const uint8_t *vend = memchr(val, 0, plen - at);
        if (vend == NULL) {
            break;
        }
        size_t vlen = (size_t)(vend - val);
        if (strcmp((const char *)name, "user") == 0) {
            if (vlen >= user_cap) {
                *reason = "user name too long";
                return CORE_STARTUP_BAD;
            }
            if (!core_base_utf8_valid(val, vlen)) {
                escape_invalid_utf8(user, user_cap, val, vlen);
                *reason = "user name is not valid UTF-8";
                return CORE_STARTUP_BAD;
            }
            memcpy(user, val, vlen + 1);
        } else if (strcmp((const char *)name, "database") == 0) {
            if (vlen >= db_cap) {
                *reason = "database name too long";
                return CORE_STARTUP_BAD;
            }
            if (!core_base_utf8_valid(val, vlen)) {
                escape_invalid_utf8(database, db_cap, val, vlen);
                *reason = "database name is not valid UTF-8";
                return CORE_STARTUP_BAD;
            }
            memcpy(database, val, vlen + 1);
        }
        at = (uint32_t)(vend - buf) + 1;
    }
    if (!terminated) {
        *reason = "malformed startup packet";
        return CORE_STARTUP_BAD;
    }
    if (user[0] == '\0') {
        *reason = "no PostgreSQL user name specified in startup packet";
        return CORE_STARTUP_BAD;
    }
    *out_len = plen;
    return CORE_STARTUP_OK;
}

void core_pgwire_frames_advance(struct core_pgwire_frames *f, const uint8_t *p, uint32_t n) {
    uint32_t i = 0;
    while (i < n) {
        if (f->body_left > 0) {
            uint32_t take = n - i < f->body_left ? n - i : f->body_left;
            i += take;
            f->body_left -= take;
            continue;
        }
        ASSERT_HOT(f->hdr_len < sizeof(f->hdr));
        f->hdr[f->hdr_len++] = p[i++];
        if (f->hdr_len == sizeof(f->hdr)) {
            uint32_t len = core_pgwire_be32(f->hdr + 1);
            f->last_type = f->hdr[0];
            f->body_len = len >= 4 ? len - 4 : 0; // a bad length is the client's to reject
            f->body_left = f->body_len;
            f->hdr_len = 0;
        }
    }
}

bool core_pgwire_frames_is_boundary(const struct core_pgwire_frames *f) {
    return f->hdr_len == 0 && f->body_left == 0;
}

void core_pgwire_error_sqlstate(const uint8_t *fields, uint32_t len, char code[6]) {
    code[0] = '\0';
    for (uint32_t at = 0; at < len && fields[at] != 0;) {
        uint8_t type = fields[at++];
        const uint8_t *v = fields + at;
        uint32_t n = 0;
        while (at + n < len && v[n] != 0) {
            n++;
        }
        if (type == 'C' && n == 5 && at + n < len) {
            memcpy(code, v, 5);
            code[5] = '\0';
            return;
        }
        at += n + 1;
    }
}

bool core_pgwire_sqlstate_refuses(const char *code, char why[48]) {
    if (strncmp(code, "57P0", 4) != 0 || code[4] < '1' || code[4] > '3') {
        return false;
    }
    snprintf(why, 48, "refuses new sessions (%s)", code);
    return true;
}
