#!/bin/sh
# run_fuzz.sh TARGET SECONDS [BUILD_DIR]: builds tests/fuzz/TARGET.c with clang
# (-fsanitize=fuzzer,address), compiling the attest sources directly, then fuzzes for SECONDS
# seeded from tests/fuzz/corpus/TARGET/. Exit 77 (ctest skip) when clang/libFuzzer is missing.
set -eu
target=${1:?usage: run_fuzz.sh TARGET SECONDS [BUILD_DIR]}
seconds=${2:?usage: run_fuzz.sh TARGET SECONDS [BUILD_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
out=${3:-$src/build-fuzz}/fuzz
cc=${CLANG:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP: clang not found; install clang to run the libFuzzer targets" >&2
    exit 77
fi
mkdir -p "$out"
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' > "$probe"
if ! "$cc" -fsanitize=fuzzer,address "$probe" -o "$out/probe" 2>/dev/null; then
    echo "SKIP: $cc has no libFuzzer runtime (-fsanitize=fuzzer)" >&2
    exit 77
fi
libdir=/usr/lib/$("$cc" -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/android
bin="$out/$target"
"$cc" -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined \
    -I"$src/attest" -I"$src/core" -isystem /usr/include/android \
    "$here/$target.c" "$src"/attest/attest*.c "$src/core/core_base.c" \
    -L"$libdir" -Wl,-rpath,"$libdir" -lcrypto -o "$bin"
work="$out/corpus-$target"
mkdir -p "$work"
# -max_total_time bounds the run; seeds are read from the repo corpus, new inputs go to $work.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 "$work" "$here/corpus/$target"
