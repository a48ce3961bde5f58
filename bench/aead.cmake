# bench_aead: the linked BoringSSL's record AEADs on 16 KiB records. Not a test: run by hand,
# see bench/RESULTS.md.
add_executable(bench_aead ${CMAKE_CURRENT_SOURCE_DIR}/bench_aead.c)
target_link_libraries(bench_aead PRIVATE core_base bssl_crypto)
target_compile_options(bench_aead PRIVATE ${ATLS_WARN_C})
