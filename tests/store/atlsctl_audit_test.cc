// atlsctl_audit_test.cc: runs the built `atlsctl audit` (core/atlsctl_audit.c) against audit
// databases written by the store: exit codes and output, including a tampered database.
#include <sys/wait.h>

#include "store_test_util.h"

using namespace store_test;

namespace {

struct CmdResult {
    int status;
    std::string out;
};

CmdResult atlsctl(const std::string &args) {
    std::string cmd = std::string(ATLS_BINARY_DIR) + "/core/atlsctl " + args + " 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        out.append(buf, n);
    }
    int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::vector<struct store_key> write_db(const std::string &dir, int n) {
    struct store_config cfg = config_for(dir);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    std::vector<struct store_key> keys;
    uint64_t t = 1732272000000000000ULL;
    for (int i = 0; i < n; i++) {
        Record r(t + (uint64_t)i * 1000000, i == 2 ? ATLS__VERDICT__VERDICT_DENIED
                                                   : ATLS__VERDICT__VERDICT_ALLOWED);
        uint64_t seq = push_ok(s, 0, &r.rec);
        keys.push_back({r.rec.time_ns, 0, seq});
    }
    store_close(s);
    return keys;
}

std::string key_text(const struct store_key &k) {
    char t[STORE_CURSOR_BYTES];
    store_key_format(t, &k);
    return t;
}

TEST(AtlsctlAudit, ListShowVerifyOnIntactDatabase) {
    TempDir t;
    auto keys = write_db(t.path, 5);
    CmdResult v = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(v.status, 0) << v.out;
    EXPECT_NE(v.out.find("audit chain intact: 5 records (global seq 1..5)"), std::string::npos)
        << v.out;

    CmdResult l = atlsctl("audit list --db " + t.path + " --limit 3");
    EXPECT_EQ(l.status, 0) << l.out;
    EXPECT_EQ(l.out.find(key_text(keys[4])), 0u) << l.out; // newest first, key first
    EXPECT_NE(l.out.find("2024-11-22T10:40:00.004000000Z"), std::string::npos) << l.out;
    EXPECT_NE(l.out.find("VERDICT_DENIED"), std::string::npos) << l.out;
    EXPECT_NE(l.out.find("checks=MEASUREMENT_NOT_ALLOWED"), std::string::npos) << l.out;
    EXPECT_NE(l.out.find("next cursor: " + key_text(keys[2])), std::string::npos) << l.out;
    EXPECT_EQ(l.out.find(key_text(keys[1])), std::string::npos) << l.out;

    CmdResult j = atlsctl("audit list --db " + t.path + " --json --limit 2");
    EXPECT_EQ(j.status, 0) << j.out;
    EXPECT_EQ(j.out.rfind("{\"records\":[{\"kind\":\"AUDIT_KIND_DECISION\"", 0), 0u) << j.out;
    EXPECT_NE(j.out.find("\"next_cursor\":\"" + key_text(keys[3]) + "\"}"), std::string::npos);

    CmdResult s = atlsctl("audit show --db " + t.path + " " + key_text(keys[2]));
    EXPECT_EQ(s.status, 0) << s.out;
    EXPECT_NE(s.out.find("failed MEASUREMENT_NOT_ALLOWED: measurement not in policy"),
              std::string::npos)
        << s.out;
    CmdResult sj = atlsctl("audit show --json --db " + t.path + " " + key_text(keys[2]));
    EXPECT_EQ(sj.status, 0) << sj.out;
    EXPECT_NE(sj.out.find("\"global_seq\":\"3\""), std::string::npos) << sj.out;
    EXPECT_NE(sj.out.find("\"report\":\""), std::string::npos) << sj.out;
}

TEST(AtlsctlAudit, VerifyFailsNamingTheTamperedRecord) {
    TempDir t;
    auto keys = write_db(t.path, 6);
    {
        RawDb raw(t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[3]));
    }
    CmdResult v = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(v.status, 1) << v.out;
    EXPECT_NE(v.out.find("audit chain BROKEN (REMOVED): record 4 was removed"), std::string::npos)
        << v.out;
    EXPECT_NE(v.out.find("key " + key_text(keys[3])), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("worker 0, seq 4"), std::string::npos) << v.out;
}

TEST(AtlsctlAudit, BadUsageAndMissingDatabase) {
    TempDir t;
    EXPECT_EQ(atlsctl("audit").status, 2);
    EXPECT_EQ(atlsctl("audit list").status, 2);                       // no --db
    EXPECT_EQ(atlsctl("audit frob --db " + t.path).status, 2);         // unknown subcommand
    EXPECT_EQ(atlsctl("audit list --db " + t.path + " --limit 0").status, 2);
    // --db and --url together is a usage error; --url to a port where no gateway listens fails
    // with a reason (port 1 on loopback: nothing listens there).
    EXPECT_EQ(atlsctl("audit list --db " + t.path + " --url http://127.0.0.1:1").status, 2);
    CmdResult u = atlsctl("audit list --url http://127.0.0.1:1");
    EXPECT_EQ(u.status, 1);
    EXPECT_NE(u.out.find("cannot connect to 127.0.0.1:1"), std::string::npos) << u.out;
    EXPECT_EQ(atlsctl("audit verify --url ftp://127.0.0.1:1").status, 1);
    CmdResult m = atlsctl("audit verify --db " + t.sub("missing"));
    EXPECT_EQ(m.status, 1);
    EXPECT_NE(m.out.find("cannot verify"), std::string::npos) << m.out;
    CmdResult l = atlsctl("audit list --db " + t.path);
    EXPECT_EQ(l.status, 1);
    EXPECT_NE(l.out.find("no readable audit database"), std::string::npos) << l.out;
    write_db(t.path, 1);
    CmdResult s = atlsctl("audit show --db " + t.path + " nothex");
    EXPECT_EQ(s.status, 2) << s.out;
    CmdResult nf = atlsctl("audit show --db " + t.path + " " + std::string(40, '0'));
    EXPECT_EQ(nf.status, 1) << nf.out;
    EXPECT_NE(nf.out.find("not found"), std::string::npos) << nf.out;
}

} // namespace
