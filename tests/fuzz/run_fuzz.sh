#!/bin/sh
# run_fuzz.sh TARGET SECONDS [BUILD_DIR]: builds tests/fuzz/TARGET.c with clang
# (-fsanitize=fuzzer,address,undefined), compiling the sources it exercises directly, then fuzzes
# for SECONDS seeded from tests/fuzz/corpus/TARGET/ (and TARGET.dict when present). Any crash,
# leak, timeout or sanitizer report fails (non-zero exit); the input is saved under
# BUILD_DIR/fuzz/artifacts-TARGET/: copy it into tests/fuzz/corpus/TARGET/ once fixed, so every
# later run replays it. Exit 77 (ctest skip) when clang/libFuzzer is missing.
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
# What each target compiles and links: only the sources of the parser under test.
max_len=8192
case "$target" in
fuzz_report | fuzz_evidence)
    sources="$src/attest/attest*.c"
    libs="-L$libdir -Wl,-rpath,$libdir -lcrypto"
    ;;
fuzz_pgwire)
    sources="$src/core/core_pgwire.c"
    libs=""
    max_len=16384
    ;;
fuzz_config)
    sources="$src/core/core_config.c"
    libs="-linih -ldl"
    # The loader delegates the [audit] keys to the store module's config functions.
    if grep -q 'store_config_' "$src/core/core_config.c"; then
        sources="$sources $src/store/store*.c $src/proto/proto.c GEN_PB_C"
        libs="$libs -L$libdir -Wl,-rpath,$libdir -lcrypto -lrocksdb -lprotobuf-c -lpthread"
    fi
    max_len=4096
    ;;
fuzz_api_query)
    sources="$src/core/core_api_query.c"
    libs=""
    max_len=256
    ;;
fuzz_policy)
    sources="$src/policy/policy.c $src/policy/policy_rules.c"
    libs="-linih"
    max_len=16384
    ;;
*)
    echo "run_fuzz.sh: unknown target '$target'" >&2
    exit 2
    ;;
esac
bin="$out/$target"
# core headers reach store.h, which includes the protobuf-c code generated at build time.
gen="$out/gen"
mkdir -p "$gen"
if command -v protoc-c >/dev/null 2>&1; then
    protoc-c --c_out="$gen" -I"$src/proto" "$src"/proto/*.proto
fi
sources=$(echo "$sources" | sed "s|GEN_PB_C|$gen/*.pb-c.c|")
# shellcheck disable=SC2086 # word splitting of $sources and $libs is intended
"$cc" -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined \
    -I"$src/attest" -I"$src/core" -I"$src/policy" -I"$src/ring" -I"$src/store" -I"$src/proto" -I"$gen" -isystem /usr/include/android \
    "$here/$target.c" $sources "$src/core/core_base.c" $libs -o "$bin"
work="$out/corpus-$target"
artifacts="$out/artifacts-$target"
mkdir -p "$work" "$artifacts"
dict=""
if [ -f "$here/$target.dict" ]; then
    dict="-dict=$here/$target.dict"
fi
# -max_total_time bounds the run; seeds (and regression inputs) are read from the repo corpus
# first, new inputs go to $work. A crash stops the run with a non-zero exit.
# shellcheck disable=SC2086
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 $dict "$work" "$here/corpus/$target"
