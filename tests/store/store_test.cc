// store_test.cc: tests store/store.c — config defaults and validation, open/close, clear errors
// for bad directories, key encoding.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "store_test_util.h"

using namespace store_test;

namespace {

TEST(Store, DefaultsAreValid) {
    struct store_config cfg;
    store_config_defaults(&cfg);
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_config_validate(err, sizeof(err), &cfg), 0) << err;
    EXPECT_EQ(cfg.sync, STORE_SYNC_ALWAYS);
    EXPECT_EQ(cfg.retention_days, 90u);
}

TEST(Store, ValidateRejectsEachBadKey) {
    struct bad_case {
        const char *key;
        void (*mutate)(struct store_config *);
    } cases[] = {
        {"dir", [](struct store_config *c) { c->dir[0] = '\0'; }},
        {"dir", [](struct store_config *c) { memset(c->dir, 'a', sizeof(c->dir)); }},
        {"sync", [](struct store_config *c) { c->sync = (enum store_sync)7; }},
        {"retention_days", [](struct store_config *c) { c->retention_days = 100000; }},
        {"ring_slots_per_worker", [](struct store_config *c) { c->ring_slots_per_worker = 3; }},
        {"ring_slots_per_worker", [](struct store_config *c) { c->ring_slots_per_worker = 1; }},
        {"ring_slots_per_worker",
         [](struct store_config *c) { c->ring_slots_per_worker = 1u << 20; }},
        {"batch_max", [](struct store_config *c) { c->batch_max = 0; }},
        {"batch_max", [](struct store_config *c) { c->batch_max = STORE_BATCH_MAX_MAX + 1; }},
        {"retention_interval_ms", [](struct store_config *c) { c->retention_interval_ms = 1; }},
    };
    for (const auto &bc : cases) {
        struct store_config cfg;
        store_config_defaults(&cfg);
        bc.mutate(&cfg);
        char err[STORE_ERR_BYTES] = "";
        EXPECT_EQ(store_config_validate(err, sizeof(err), &cfg), -EINVAL) << bc.key;
        EXPECT_NE(strstr(err, bc.key), nullptr) << err;
    }
}

TEST(Store, OpenCreatesDirectoryAndReopens) {
    TempDir t;
    struct store_config cfg = config_for(t.sub("audit"));
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 2), 0) << err;
    EXPECT_TRUE(store_is_healthy(s));
    EXPECT_EQ(store_health_error(s, err, sizeof(err)), 0);
    EXPECT_EQ(store_durable_seq(s, 1), 0u);
    EXPECT_GE(store_worker_eventfd(s, 0), 0);
    store_close(s);
    s = nullptr;
    ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 4), 0) << err; // worker count may change
    store_close(s);
    store_close(nullptr);
}

// The audit writer shares a core with a worker and must not preempt it on every wake-up: it
// runs SCHED_BATCH (store_audit_thread_main).
TEST(Store, WriterThreadRunsSchedBatch) {
    TempDir t;
    struct store_config cfg = config_for(t.sub("audit"));
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    int policy = -1;
    bool found = false;
    for (int i = 0; i < 200 && policy != SCHED_BATCH; i++) {
        DIR *d = opendir("/proc/self/task");
        ASSERT_NE(d, nullptr);
        while (struct dirent *e = readdir(d)) {
            std::string comm_path = std::string("/proc/self/task/") + e->d_name + "/comm";
            FILE *f = fopen(comm_path.c_str(), "r");
            if (f == nullptr) {
                continue;
            }
            char comm[32] = "";
            bool named = fgets(comm, sizeof(comm), f) != nullptr &&
                         strncmp(comm, "atls-store", 10) == 0;
            fclose(f);
            if (named) {
                found = true;
                policy = sched_getscheduler((pid_t)atoi(e->d_name));
            }
        }
        closedir(d);
        usleep(10000);
    }
    store_close(s);
    EXPECT_TRUE(found) << "no thread named atls-store";
    EXPECT_EQ(policy, SCHED_BATCH);
}

TEST(Store, OpenFailsOnMissingParent) {
    TempDir t;
    struct store_config cfg = config_for(t.sub("no/such/audit"));
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), -ENOENT);
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(strstr(err, "parent directory does not exist"), nullptr) << err;
    EXPECT_NE(strstr(err, "no/such/audit"), nullptr) << err;
}

TEST(Store, OpenFailsOnAFile) {
    TempDir t;
    std::string f = t.sub("file");
    int fd = open(f.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    struct store_config cfg = config_for(f);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), -ENOTDIR);
    EXPECT_NE(strstr(err, "not a directory"), nullptr) << err;
    EXPECT_EQ(store_open_readonly(&s, err, sizeof(err), f.c_str()), -ENOTDIR);
}

TEST(Store, OpenFailsOnReadOnlyDirectory) {
    TempDir t;
    std::string d = t.sub("ro");
    ASSERT_EQ(mkdir(d.c_str(), 0555), 0);
    ASSERT_EQ(chmod(d.c_str(), 0555), 0);
    ASSERT_EQ(chmod(t.path.c_str(), 0755), 0);
    // root ignores mode bits: run the open as an unprivileged user in a child.
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
            _exit(100);
        }
        struct store_config cfg = config_for(d);
        struct store *s = nullptr;
        char err[STORE_ERR_BYTES] = "";
        int rc = store_open(&s, err, sizeof(err), &cfg, 1);
        if (rc == -EACCES && strstr(err, "not writable") != nullptr) {
            _exit(0);
        }
        fprintf(stderr, "rc=%d err=%s\n", rc, err);
        _exit(1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 100) {
        GTEST_SKIP() << "cannot drop privileges to test a read-only directory";
    }
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Store, SecondOpenOfSameDirectoryFailsWhileLocked) {
    TempDir t;
    struct store_config cfg = config_for(t.path);
    struct store *a = nullptr;
    struct store *b = nullptr;
    char err[STORE_ERR_BYTES] = "";
    ASSERT_EQ(store_open(&a, err, sizeof(err), &cfg, 1), 0) << err;
    EXPECT_EQ(store_open(&b, err, sizeof(err), &cfg, 1), -EBUSY);
    EXPECT_NE(strstr(err, "rocksdb open"), nullptr) << err;
    // A read-only open works next to the writer (atlsctl while the gateway runs).
    ASSERT_EQ(store_open_readonly(&b, err, sizeof(err), t.path.c_str()), 0) << err;
    store_close(b);
    store_close(a);
}

TEST(Store, OpenRejectsBadWorkerCount) {
    TempDir t;
    struct store_config cfg = config_for(t.path);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 0), -EINVAL);
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, STORE_WORKERS_MAX + 1), -EINVAL);
}

TEST(Store, OpenReadonlyFailsWithoutDatabase) {
    TempDir t;
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open_readonly(&s, err, sizeof(err), t.path.c_str()), -ENOENT);
    EXPECT_NE(strstr(err, "no readable audit database"), nullptr) << err;
    EXPECT_EQ(store_open_readonly(&s, err, sizeof(err), t.sub("missing").c_str()), -ENOENT);
}

TEST(Store, OpenFailsOnGarbageDatabase) {
    TempDir t;
    std::string cur = t.sub("CURRENT");
    FILE *f = fopen(cur.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs("MANIFEST-999999\n", f);
    fclose(f);
    struct store_config cfg = config_for(t.path);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    int rc = store_open(&s, err, sizeof(err), &cfg, 1);
    EXPECT_LT(rc, 0);
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(strstr(err, "rocksdb open"), nullptr) << err;
}

TEST(Store, KeyFormatParseRoundTripAndOrder) {
    struct store_key k = {1732272000123456789ULL, 7, 42};
    char text[STORE_CURSOR_BYTES];
    store_key_format(text, &k);
    EXPECT_EQ(strlen(text), 40u);
    struct store_key back;
    ASSERT_EQ(store_key_parse(&back, text), 0);
    EXPECT_EQ(back.time_ns, k.time_ns);
    EXPECT_EQ(back.worker, k.worker);
    EXPECT_EQ(back.seq, k.seq);
    EXPECT_EQ(store_key_parse(&back, "abc"), -EINVAL);
    text[3] = 'z';
    EXPECT_EQ(store_key_parse(&back, text), -EINVAL);
    // Big-endian: byte order is time order.
    struct store_key later = {k.time_ns + 1, 0, 0};
    EXPECT_LT(key_bytes(k), key_bytes(later));
}

} // namespace
