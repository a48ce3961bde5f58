# bench_nonce: nonce table throughput (policy module). Not a test: run by hand, see bench/RESULTS.md.
if(TARGET policy)
    add_executable(bench_nonce ${CMAKE_CURRENT_SOURCE_DIR}/bench_nonce.c)
    target_link_libraries(bench_nonce PRIVATE policy Threads::Threads)
    target_compile_options(bench_nonce PRIVATE ${ATLS_WARN_C})
endif()
