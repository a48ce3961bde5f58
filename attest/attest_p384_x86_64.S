// attest_p384_x86_64.S: P-384 field multiplication mod p with BMI2 (mulx) and ADX (adcx, adox).
//
// Why this exists: the report signature's verification is ~1,200 field multiplications, a fifth
// to a quarter of an attested handshake's CPU. The portable C in attest_p384.c takes ~50-60 ns
// per multiplication on the bench machine; this code ~35-45 ns, because mulx leaves the flags
// alone and adcx/adox carry two additions at once (one through CF, one through OF).
//
// Same arithmetic as the C code (attest_p384.c, fe_reduce), which stays the reference and the
// fallback on CPUs without BMI2/ADX (attest_p384.c checks CPUID before first use):
//   t = a * b, 12 limbs, row by row: row i adds a[i] * b into a 7-limb window of registers;
//   t = L + 2^384 H = L + H * d (mod p), d = 2^384 - p = d0 + d1 2^64 + 2^128 with
//       d0 = 0xffffffff00000001, d1 = 0xffffffff: below 2^514;
//   its bits above 384, G < 2^130, are folded the same way; a carry out of 2^384 is folded as
//       + d; one subtraction of p, done as + d when that carries out of 2^384.
// Only public data is handled; the branches depend on the values (see attest_p384.c).
//
// System V ABI, leaf functions: the 12-limb product lives in the red zone below the six pushed
// registers.
        .text

#define T(k) (-96+8*(k))(%rsp) // no spaces: it is passed as one macro argument
#define D0 $0xffffffff00000001
#define D1 $0xffffffff

// MADD src, lo, hi: lo += low half of rdx * src (OF chain), hi += high half (CF chain).
.macro MADD src, lo, hi
        mulxq   \src, %rbx, %rbp
        adoxq   %rbx, \lo
        adcxq   %rbp, \hi
.endm

// MULROW i, c0..c6: c0..c6 += a[i] * b, where rsi = a, rcx = b; c6 enters as 0 (set here) and
// leaves holding the window's top; c0 is final and is stored as T(i). OF carries the low halves
// of the products, CF the high halves; neither overflows the window (the sum is a partial
// product of a * b).
.macro MULROW i, c0, c1, c2, c3, c4, c5, c6
        movq    8*\i(%rsi), %rdx
        xorl    %eax, %eax
        movq    %rax, \c6
        MADD    0(%rcx), \c0, \c1
        MADD    8(%rcx), \c1, \c2
        MADD    16(%rcx), \c2, \c3
        MADD    24(%rcx), \c3, \c4
        MADD    32(%rcx), \c4, \c5
        MADD    40(%rcx), \c5, \c6
        adoxq   %rax, \c6
        movq    \c0, T(\i)
.endm

// HROW r0..r6: r0..r6 += rdx * H, H = T(6..11); r6 enters as 0 and the sum fits (< 2^514).
.macro HROW r0, r1, r2, r3, r4, r5, r6
        xorl    %eax, %eax
        MADD    T(6), \r0, \r1
        MADD    T(7), \r1, \r2
        MADD    T(8), \r2, \r3
        MADD    T(9), \r3, \r4
        MADD    T(10), \r4, \r5
        MADD    T(11), \r5, \r6
        adoxq   %rax, \r6
.endm

// GROW r0..r3: r0..r5, rsi += rdx * G, G = (r14, r15, rcx) < 2^130; both carries run to rsi.
.macro GROW r0, r1, r2, r3
        xorl    %eax, %eax
        MADD    %r14, \r0, \r1
        MADD    %r15, \r1, \r2
        MADD    %rcx, \r2, \r3
.endm

.macro PROLOGUE
        .cfi_startproc
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_offset %rbx, -16
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_offset %rbp, -24
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_offset %r12, -32
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_offset %r13, -40
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_offset %r14, -48
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_offset %r15, -56
.endm

// REDUCE tag: out (rdi) = T(0..11) mod p; then restores the registers and returns.
.macro REDUCE tag
        // First fold: r8..r15, rcx = L + H d0 + 2^64 H d1 + 2^128 H.
        movq    T(0), %r8
        movq    T(1), %r9
        movq    T(2), %r10
        movq    T(3), %r11
        movq    T(4), %r12
        movq    T(5), %r13
        xorl    %r14d, %r14d
        xorl    %r15d, %r15d
        xorl    %ecx, %ecx
        movabsq D0, %rdx
        HROW    %r8, %r9, %r10, %r11, %r12, %r13, %r14
        movl    D1, %edx
        HROW    %r9, %r10, %r11, %r12, %r13, %r14, %r15
        addq    T(6), %r10
        adcq    T(7), %r11
        adcq    T(8), %r12
        adcq    T(9), %r13
        adcq    T(10), %r14
        adcq    T(11), %r15
        adcq    $0, %rcx
        // Second fold of G = (r14, r15, rcx) into r8..r13 with the carry out in rsi (0 or 1).
        xorl    %esi, %esi
        movabsq D0, %rdx
        GROW    %r8, %r9, %r10, %r11
        adoxq   %rax, %r11
        adcxq   %rax, %r12
        adoxq   %rax, %r12
        adcxq   %rax, %r13
        adoxq   %rax, %r13
        adcxq   %rax, %rsi
        adoxq   %rax, %rsi
        movl    D1, %edx
        GROW    %r9, %r10, %r11, %r12
        adoxq   %rax, %r12
        adcxq   %rax, %r13
        adoxq   %rax, %r13
        adcxq   %rax, %rsi
        adoxq   %rax, %rsi
        addq    %r14, %r10
        adcq    %r15, %r11
        adcq    %rcx, %r12
        adcq    $0, %r13
        adcq    $0, %rsi
        testq   %rsi, %rsi
        jnz     .Lcarry\tag
.Lcheck\tag:
        // A value >= p has a top limb of all ones (so do p's top three limbs): rare.
        cmpq    $-1, %r13
        je      .Lsub\tag
.Ldone\tag:
        movq    %r8, 0(%rdi)
        movq    %r9, 8(%rdi)
        movq    %r10, 16(%rdi)
        movq    %r11, 24(%rdi)
        movq    %r12, 32(%rdi)
        movq    %r13, 40(%rdi)
        popq    %r15
        .cfi_remember_state
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r15
        popq    %r14
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r14
        popq    %r13
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r13
        popq    %r12
        .cfi_adjust_cfa_offset -8
        .cfi_restore %r12
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbp
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        .cfi_restore %rbx
        ret
        .cfi_restore_state
.Lcarry\tag:
        // The value is r + 2^384 with r < 2^259: r + d, which does not carry.
        movabsq D0, %rdx
        addq    %rdx, %r8
        movl    D1, %edx
        adcq    %rdx, %r9
        adcq    $1, %r10
        adcq    $0, %r11
        adcq    $0, %r12
        adcq    $0, %r13
        jmp     .Lcheck\tag
.Lsub\tag:
        // r - p = r + d - 2^384: taken when r + d carries out of 2^384.
        movq    %r8, %rax
        movabsq D0, %rdx
        addq    %rdx, %rax
        movq    %r9, %rbx
        movl    D1, %edx
        adcq    %rdx, %rbx
        movq    %r10, %rbp
        adcq    $1, %rbp
        movq    %r11, %rcx
        adcq    $0, %rcx
        movq    %r12, %rsi
        adcq    $0, %rsi
        movq    %r13, %rdx
        adcq    $0, %rdx
        cmovcq  %rax, %r8
        cmovcq  %rbx, %r9
        cmovcq  %rbp, %r10
        cmovcq  %rcx, %r11
        cmovcq  %rsi, %r12
        cmovcq  %rdx, %r13
        jmp     .Ldone\tag
.endm

// void attest_p384_mul_adx(uint64_t out[6], const uint64_t a[6], const uint64_t b[6]):
// out = a * b mod p for a, b < p (little-endian limbs). out may alias a or b.
        .globl  attest_p384_mul_adx
        .hidden attest_p384_mul_adx
        .type   attest_p384_mul_adx, @function
        .p2align 4
attest_p384_mul_adx:
        PROLOGUE
        movq    %rdx, %rcx
        xorl    %r8d, %r8d
        xorl    %r9d, %r9d
        xorl    %r10d, %r10d
        xorl    %r11d, %r11d
        xorl    %r12d, %r12d
        xorl    %r13d, %r13d
        MULROW  0, %r8, %r9, %r10, %r11, %r12, %r13, %r14
        MULROW  1, %r9, %r10, %r11, %r12, %r13, %r14, %r8
        MULROW  2, %r10, %r11, %r12, %r13, %r14, %r8, %r9
        MULROW  3, %r11, %r12, %r13, %r14, %r8, %r9, %r10
        MULROW  4, %r12, %r13, %r14, %r8, %r9, %r10, %r11
        MULROW  5, %r13, %r14, %r8, %r9, %r10, %r11, %r12
        movq    %r14, T(6)
        movq    %r8, T(7)
        movq    %r9, T(8)
        movq    %r10, T(9)
        movq    %r11, T(10)
        movq    %r12, T(11)
        REDUCE  mul
        .cfi_endproc
        .size   attest_p384_mul_adx, .-attest_p384_mul_adx

// void attest_p384_reduce_adx(uint64_t out[6], const uint64_t t[12]): out = t mod p for any
// t < 2^768; the multiplication's reduction, for the tests.
        .globl  attest_p384_reduce_adx
        .hidden attest_p384_reduce_adx
        .type   attest_p384_reduce_adx, @function
        .p2align 4
attest_p384_reduce_adx:
        PROLOGUE
        .irp k, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
        movq    8*\k(%rsi), %rax
        movq    %rax, T(\k)
        .endr
        REDUCE  red
        .cfi_endproc
        .size   attest_p384_reduce_adx, .-attest_p384_reduce_adx

        .section .note.GNU-stack, "", @progbits
