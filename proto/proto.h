// proto.h: thin helpers over the protobuf-c messages generated from audit.proto and api.proto:
// packed size, pack into a caller buffer, unpack into a caller arena (no malloc), and one
// reflective JSON encoder so that protobuf and JSON answers carry the same fields.
#ifndef ATLS_PROTO_H
#define ATLS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "api.pb-c.h"
#include "audit.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

// Sizes fixed by the SEV-SNP report format (docs/snp-verification.md).
#define PROTO_MEASUREMENT_BYTES 48
#define PROTO_REPORT_BYTES 1184
#define PROTO_SHA256_BYTES 32
// PROTO_JSON_DEPTH_MAX bounds message nesting in proto_json_encode (rule 10).
#define PROTO_JSON_DEPTH_MAX 16

// struct proto_arena is a bump allocator over a caller buffer: protobuf-c unpacks into it and
// nothing is freed individually; proto_arena_reset releases everything at once.
struct proto_arena {
    uint8_t *buf;
    size_t cap;
    size_t used;
    bool exhausted; // an allocation did not fit since the last reset
    ProtobufCAllocator allocator;
};

/* proto.c */

// proto_arena_init makes `arena` allocate from `buf` (`cap` bytes, borrowed for the arena's
// lifetime). Cannot fail.
void proto_arena_init(struct proto_arena *arena, void *buf, size_t cap);

// proto_arena_reset forgets every allocation: messages unpacked into `arena` become invalid.
void proto_arena_reset(struct proto_arena *arena);

// proto_packed_size returns the exact packed size of `msg` in bytes.
size_t proto_packed_size(const ProtobufCMessage *msg);

// proto_pack packs `msg` into `out` (`cap` bytes) and sets `*out_len`. Returns 0, or -EMSGSIZE
// when the packed message does not fit (nothing is written then). Never allocates.
int proto_pack(uint8_t *out, size_t *out_len, size_t cap, const ProtobufCMessage *msg);

// proto_unpack decodes `len` bytes of `data` as a `desc` message allocated in `arena` and sets
// `*out_msg` (valid until the arena is reset). Returns 0, -EBADMSG for bytes that are not a
// valid `desc` message, or -ENOMEM when the arena is too small. Never calls malloc.
int proto_unpack(struct proto_arena *arena, ProtobufCMessage **out_msg,
                 const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len);

// proto_json_encode writes `msg` as one JSON object plus a NUL into `out` (`cap` bytes) and sets
// `*out_len` (without the NUL). Returns 0, -ENOSPC when `out` is too small, or -ELOOP when
// nesting exceeds PROTO_JSON_DEPTH_MAX. The mapping, driven only by the descriptors:
//   - keys are the .proto field names (snake_case), in field-number order; every field of a
//     proto3 message is present, with its default when unset; absent proto2 optionals and
//     unset oneof members are omitted; an unset sub-message is `null`;
//   - 32-bit integers and bools are JSON numbers/booleans; 64-bit integers are decimal
//     strings ("1732272000000000000"), as in the proto3 JSON mapping, because JavaScript
//     numbers lose precision above 2^53 (nanosecond timestamps);
//   - float/double use %.9g/%.17g; NaN and infinities are the strings "NaN", "Infinity",
//     "-Infinity";
//   - enums are their value name ("VERDICT_DENIED"), or the number when the value is unknown;
//   - bytes are lowercase hex strings (NOT base64 as in proto3 JSON): measurements, chip ids
//     and hashes are read and compared as hex everywhere in this project;
//   - strings are escaped per RFC 8259 (", \, control characters as \uXXXX); a byte that is
//     not part of a valid UTF-8 sequence is written as \ufffd, so the output is always valid
//     UTF-8 (JSON requires it) whatever a string field holds; repeated fields are arrays.
int proto_json_encode(char *out, size_t *out_len, size_t cap, const ProtobufCMessage *msg);

#ifdef __cplusplus
}
#endif

#endif // ATLS_PROTO_H
