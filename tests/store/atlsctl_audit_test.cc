// atlsctl_audit_test.cc: runs the built `atlsctl audit` (core/atlsctl_audit.c) against audit
// databases written by the store: exit codes and output, including a tampered database.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "api.pb-c.h"
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

// ApiServer answers GET /api/v1/attestations?limit=&cursor= from an audit directory the way
// the gateway's API does (core/core_api.c api_attestations: store_query_list, the records in an
// AttestationList with its next_cursor, a Content-Length), on a loopback port, one connection at
// a time, in pages of at most `page_max` records. The other modes misbehave: kCutBeforeCursor
// sends the body only up to its next_cursor (a page cut at a record boundary) under the whole
// body's Content-Length; kDrip sends one byte of the body every 100 ms.
class ApiServer {
  public:
    enum class Mode { kWhole, kCutBeforeCursor, kDrip };

    ApiServer(const std::string &dir, uint32_t page_max, Mode mode = Mode::kWhole)
        : page_max_(page_max), mode_(mode) {
        char err[STORE_ERR_BYTES] = "";
        EXPECT_EQ(store_open_readonly(&s_, err, sizeof(err), dir.c_str()), 0) << err;
        lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t alen = sizeof(a);
        EXPECT_EQ(bind(lfd_, (struct sockaddr *)&a, sizeof(a)), 0);
        EXPECT_EQ(listen(lfd_, 8), 0);
        EXPECT_EQ(getsockname(lfd_, (struct sockaddr *)&a, &alen), 0);
        port_ = ntohs(a.sin_port);
        th_ = std::thread([this] { run(); });
    }
    ~ApiServer() {
        stop_ = true;
        th_.join();
        close(lfd_);
        store_close(s_);
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(port_);
    }
    int pages() const {
        return pages_;
    }

  private:
    void run() {
        while (!stop_) {
            struct pollfd p = {lfd_, POLLIN, 0};
            if (poll(&p, 1, 50) != 1) {
                continue;
            }
            int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0) {
                answer(fd);
                close(fd);
            }
        }
    }
    static std::string param(const std::string &target, const std::string &name) {
        size_t at = target.find(name + "=");
        if (at == std::string::npos) {
            return "";
        }
        at += name.size() + 1;
        return target.substr(at, target.find('&', at) - at);
    }
    static int add_fn(void *arg, const struct store_key *, const uint8_t *value, size_t len) {
        auto *recs = static_cast<std::vector<Atls__AuditRecord *> *>(arg);
        Atls__AuditRecord *r = atls__audit_record__unpack(nullptr, len, value);
        if (r == nullptr) {
            return -EBADMSG;
        }
        recs->push_back(r);
        return 0;
    }
    void answer(int fd) {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
            struct pollfd p = {fd, POLLIN, 0};
            ssize_t n = poll(&p, 1, 2000) == 1 ? recv(fd, buf, sizeof(buf), 0) : -1;
            if (n <= 0) {
                return;
            }
            req.append(buf, (size_t)n);
        }
        std::string target = req.substr(4, req.find(' ', 4) - 4); // "GET <target> HTTP/1.0"
        struct store_list_query q = {};
        q.limit = std::min<uint32_t>((uint32_t)std::stoul(param(target, "limit")), page_max_);
        snprintf(q.cursor, sizeof(q.cursor), "%s", param(target, "cursor").c_str());
        std::vector<Atls__AuditRecord *> recs;
        char next[STORE_CURSOR_BYTES] = "";
        EXPECT_EQ(store_query_list(s_, next, &q, add_fn, &recs), 0);
        Atls__AttestationList l = ATLS__ATTESTATION_LIST__INIT;
        l.n_records = recs.size();
        l.records = recs.data();
        std::string records_only(atls__attestation_list__get_packed_size(&l), '\0');
        atls__attestation_list__pack(&l, (uint8_t *)&records_only[0]);
        l.next_cursor = next;
        std::string body(atls__attestation_list__get_packed_size(&l), '\0');
        atls__attestation_list__pack(&l, (uint8_t *)&body[0]);
        for (auto *r : recs) {
            atls__audit_record__free_unpacked(r, nullptr);
        }
        pages_++;
        std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                           "Content-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
        if (mode_ == Mode::kCutBeforeCursor) {
            body = records_only;
        }
        if (mode_ != Mode::kDrip) {
            std::string all = head + body;
            EXPECT_EQ(send(fd, all.data(), all.size(), MSG_NOSIGNAL), (ssize_t)all.size());
            return;
        }
        send(fd, head.data(), head.size(), MSG_NOSIGNAL);
        // Up to 30 s, so that a client without an overall deadline still ends.
        for (size_t i = 0; i < body.size() && i < 300 && !stop_; i++) {
            if (send(fd, &body[i], 1, MSG_NOSIGNAL) != 1) {
                return; // the client gave up
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    struct store *s_ = nullptr;
    uint32_t page_max_;
    Mode mode_;
    int lfd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> pages_{0};
    std::thread th_;
};

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

// The API serves a page cut where its next_cursor began (a valid AttestationList of fewer
// records, no cursor): the client compares the body with its Content-Length instead of
// listing a short page, or verifying a short trail, as if it were complete.
TEST(AtlsctlAudit, UrlRefusesABodyShorterThanItsContentLength) {
    TempDir t;
    write_db(t.path, 6);
    {
        ApiServer whole(t.path, 2);
        CmdResult v = atlsctl("audit verify --url " + whole.url());
        EXPECT_EQ(v.status, 0) << v.out;
        EXPECT_NE(v.out.find("6 records (global seq 1..6)"), std::string::npos) << v.out;
        EXPECT_EQ(whole.pages(), 3);
    }
    ApiServer cut(t.path, 2, ApiServer::Mode::kCutBeforeCursor);
    CmdResult l = atlsctl("audit list --url " + cut.url());
    EXPECT_EQ(l.status, 1) << l.out;
    EXPECT_NE(l.out.find("but its Content-Length is"), std::string::npos) << l.out;
    EXPECT_EQ(l.out.find("VERDICT_"), std::string::npos) << l.out;
    CmdResult v = atlsctl("audit verify --url " + cut.url());
    EXPECT_NE(v.status, 0) << v.out;
    EXPECT_EQ(v.out.find("intact"), std::string::npos) << v.out;
}

// A server that keeps sending, slowly, never trips a per-read timeout: the request as a whole
// has a deadline (10 s).
TEST(AtlsctlAudit, UrlGivesUpOnASlowAnswerAtTheDeadline) {
    TempDir t;
    write_db(t.path, 3);
    ApiServer drip(t.path, 3, ApiServer::Mode::kDrip);
    auto t0 = std::chrono::steady_clock::now();
    CmdResult l = atlsctl("audit list --url " + drip.url());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(l.status, 1) << l.out;
    EXPECT_NE(l.out.find("no complete answer within 10 s"), std::string::npos) << l.out;
    EXPECT_GE(secs, 9.0);
    EXPECT_LT(secs, 15.0);
}

} // namespace
