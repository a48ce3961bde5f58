// tsan_rocksdb.cc: ThreadSanitizer suppressions for the store tests (linked into each).
// WARNING: Debian's librocksdb is not built with -fsanitize=thread, so the std::atomic
// acquire/release that publish memtable skiplist nodes to concurrent readers are invisible to
// TSan; the memcpy/memcmp it does through TSan's interceptors on those nodes then look like
// races (writer MemTable::Add vs reader DBIter). RocksDB documents concurrent reads and writes
// on one DB as thread-safe. Only interceptor calls made from inside librocksdb are ignored; our
// own code stays fully checked.
extern "C" const char *__tsan_default_suppressions(void);
extern "C" const char *__tsan_default_suppressions(void) {
    return "called_from_lib:librocksdb.so\n";
}
