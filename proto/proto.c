// proto.c: pack/unpack helpers without malloc and the descriptor-driven JSON encoder.
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

#include "core_base.h"

#define ARENA_ALIGN 16

static void *arena_alloc(void *data, size_t size) {
    struct proto_arena *a = data;
    size_t start = (a->used + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (start > a->cap || size > a->cap - start) {
        a->exhausted = true;
        return NULL;
    }
    a->used = start + size;
    return a->buf + start;
}

static void arena_free(void *data, void *ptr) {
    // Bump arena: memory comes back all at once in proto_arena_reset.
    (void)data;
    (void)ptr;
}

void proto_arena_init(struct proto_arena *arena, void *buf, size_t cap) {
    ASSERT(arena != NULL);
    ASSERT(buf != NULL || cap == 0);
    arena->buf = buf;
    arena->cap = cap;
    arena->used = 0;
    arena->exhausted = false;
    arena->allocator.alloc = arena_alloc;
    arena->allocator.free = arena_free;
    arena->allocator.allocator_data = arena;
}

void proto_arena_reset(struct proto_arena *arena) {
    ASSERT(arena != NULL);
    arena->used = 0;
    arena->exhausted = false;
}

size_t proto_packed_size(const ProtobufCMessage *msg) {
    ASSERT(msg != NULL);
    ASSERT(msg->descriptor != NULL);
    return protobuf_c_message_get_packed_size(msg);
}

int proto_pack(uint8_t *out, size_t *out_len, size_t cap, const ProtobufCMessage *msg) {
    ASSERT(out != NULL || cap == 0);
    ASSERT(out_len != NULL);
    size_t need = proto_packed_size(msg);
    if (need > cap) {
        *out_len = 0;
        return -EMSGSIZE;
    }
    size_t n = protobuf_c_message_pack(msg, out);
    ASSERT(n == need);
    *out_len = n;
    return 0;
}

int proto_unpack(struct proto_arena *arena, ProtobufCMessage **out_msg,
                 const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len) {
    ASSERT(arena != NULL);
    ASSERT(out_msg != NULL);
    ASSERT(desc != NULL);
    ASSERT(data != NULL || len == 0);
    *out_msg = NULL;
    arena->exhausted = false;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &arena->allocator, len, data);
    if (m == NULL) {
        return arena->exhausted ? -ENOMEM : -EBADMSG;
    }
    ASSERT(m->descriptor == desc);
    *out_msg = m;
    return 0;
}

// ---- JSON ----

struct jw {
    char *buf;
    size_t cap; // includes room for the NUL
    size_t len;
    bool overflow;
};

static void jw_put(struct jw *w, const char *s, size_t n) {
    if (w->overflow || n >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void jw_str(struct jw *w, const char *s) {
    jw_put(w, s, strlen(s));
}

static void jw_fmt(struct jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jw_fmt(struct jw *w, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof(tmp));
    jw_put(w, tmp, (size_t)n);
}

static void jw_escaped(struct jw *w, const char *s) {
    static const char hex[] = "0123456789abcdef";
    jw_put(w, "\"", 1);
    size_t len = strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && !w->overflow; p++) {
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t n = core_base_utf8_seq_len(p, len - (size_t)(p - (const unsigned char *)s));
            if (n == 0) {
                jw_put(w, "\\ufffd", 6);
            } else {
                jw_put(w, (const char *)p, n);
                p += n - 1;
            }
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            jw_put(w, esc, 2);
        } else if (c == '\n') {
            jw_put(w, "\\n", 2);
        } else if (c == '\r') {
            jw_put(w, "\\r", 2);
        } else if (c == '\t') {
            jw_put(w, "\\t", 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            jw_put(w, esc, 6);
        } else {
            jw_put(w, (const char *)p, 1);
        }
    }
    jw_put(w, "\"", 1);
}

static void jw_hex(struct jw *w, const uint8_t *data, size_t len) {
    static const char hex[] = "0123456789abcdef";
    jw_put(w, "\"", 1);
    for (size_t i = 0; i < len && !w->overflow; i++) {
        char pair[2] = {hex[data[i] >> 4], hex[data[i] & 0xf]};
        jw_put(w, pair, 2);
    }
    jw_put(w, "\"", 1);
}

static void jw_double(struct jw *w, double v, bool is_float) {
    if (isnan(v)) {
        jw_str(w, "\"NaN\"");
    } else if (isinf(v)) {
        jw_str(w, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else if (is_float) {
        jw_fmt(w, "%.9g", v);
    } else {
        jw_fmt(w, "%.17g", v);
    }
}

static int json_message(struct jw *w, const ProtobufCMessage *msg, unsigned depth);

// json_value writes one value of `field`'s type stored at `p`.
static int json_value(struct jw *w, const ProtobufCFieldDescriptor *field, const void *p,
                      unsigned depth) {
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        jw_fmt(w, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        jw_fmt(w, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        jw_fmt(w, "\"%" PRId64 "\"", *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        jw_fmt(w, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        jw_double(w, (double)*(const float *)p, true);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        jw_double(w, *(const double *)p, false);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        jw_str(w, *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(field->descriptor, v);
        if (ev != NULL) {
            jw_escaped(w, ev->name);
        } else {
            jw_fmt(w, "%d", v);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        jw_escaped(w, s != NULL ? s : "");
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        jw_hex(w, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL) {
            jw_str(w, "null");
            break;
        }
        return json_message(w, sub, depth + 1);
    }
    default:
        UNREACHABLE();
    }
    return 0;
}

// elem_size returns the in-memory size of one element of a repeated `field`.
static size_t elem_size(const ProtobufCFieldDescriptor *field) {
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        UNREACHABLE();
    }
}

// field_is_present decides whether a non-repeated `field` of `msg` is written at all.
static bool field_is_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *field) {
    const char *base = (const char *)msg;
    if ((field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
        return *(const uint32_t *)(base + field->quantifier_offset) == field->id;
    }
    if (field->label != PROTOBUF_C_LABEL_OPTIONAL) {
        return true; // proto3 (LABEL_NONE) and proto2 required: always written
    }
    if (field->type == PROTOBUF_C_TYPE_STRING || field->type == PROTOBUF_C_TYPE_MESSAGE) {
        return *(void *const *)(base + field->offset) != NULL;
    }
    return *(const protobuf_c_boolean *)(base + field->quantifier_offset) != 0;
}

static int json_message(struct jw *w, const ProtobufCMessage *msg, unsigned depth) {
    if (depth > PROTO_JSON_DEPTH_MAX) {
        return -ELOOP;
    }
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    ASSERT(desc != NULL);
    ASSERT(desc->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    const char *base = (const char *)msg;
    bool first = true;
    jw_put(w, "{", 1);
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (!repeated && !field_is_present(msg, f)) {
            continue;
        }
        if (!first) {
            jw_put(w, ",", 1);
        }
        first = false;
        jw_escaped(w, f->name);
        jw_put(w, ":", 1);
        int rc = 0;
        if (repeated) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            size_t sz = elem_size(f);
            jw_put(w, "[", 1);
            for (size_t k = 0; k < n && rc == 0 && !w->overflow; k++) {
                if (k > 0) {
                    jw_put(w, ",", 1);
                }
                rc = json_value(w, f, arr + k * sz, depth);
            }
            jw_put(w, "]", 1);
        } else {
            rc = json_value(w, f, base + f->offset, depth);
        }
        if (rc != 0) {
            return rc;
        }
        if (w->overflow) {
            return -ENOSPC;
        }
    }
    jw_put(w, "}", 1);
    return w->overflow ? -ENOSPC : 0;
}

int proto_json_encode(char *out, size_t *out_len, size_t cap, const ProtobufCMessage *msg) {
    ASSERT(out_len != NULL);
    ASSERT(msg != NULL);
    *out_len = 0;
    if (out == NULL || cap == 0) {
        return -ENOSPC;
    }
    struct jw w = {.buf = out, .cap = cap, .len = 0, .overflow = false};
    int rc = json_message(&w, msg, 0);
    if (rc == 0 && w.overflow) {
        rc = -ENOSPC;
    }
    if (rc != 0) {
        out[0] = '\0';
        return rc;
    }
    ASSERT(w.len < cap);
    out[w.len] = '\0';
    *out_len = w.len;
    return 0;
}
