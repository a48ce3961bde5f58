// policy_internal.h: helpers shared among policy/*.c (and tests/policy/) only.
#ifndef ATLS_POLICY_INTERNAL_H
#define ATLS_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// policy_internal_random fills `out` with `len` bytes from getrandom(2). Returns 0 or -EIO.
int policy_internal_random(void *out, size_t len);

// policy_internal_mix64 is the splitmix64 finaliser, used to spread hash keys over tables.
uint64_t policy_internal_mix64(uint64_t x);

#ifdef __cplusplus
}
#endif

#endif // ATLS_POLICY_INTERNAL_H
