# bench/attest.cmake: bench_attest, the single-thread micro-benchmark of SNP report and evidence
# verification against BoringSSL's raw P-384 ECDSA_do_verify rate (owned by attest/).
if(TARGET attest)
    add_executable(bench_attest ${CMAKE_CURRENT_LIST_DIR}/bench_attest.c)
    target_link_libraries(bench_attest PRIVATE attest bssl_crypto)
    target_compile_options(bench_attest PRIVATE ${ATLS_WARN_C})
    target_compile_definitions(bench_attest PRIVATE ATLS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
