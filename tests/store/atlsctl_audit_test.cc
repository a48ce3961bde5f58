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

std::vector<struct store_key> write_db(const std::string &dir, int n, uint64_t later_ns = 0) {
    struct store_config cfg = config_for(dir);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 1), 0) << err;
    std::vector<struct store_key> keys;
    uint64_t t = 1732272000000000000ULL + later_ns;
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
    EXPECT_NE(j.out.find("\"next_cursor\":\"" + key_text(keys[3]) + "\",\"unreadable\":0}"),
              std::string::npos)
        << j.out;

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
    EXPECT_EQ(atlsctl("audit verify --url ftp://127.0.0.1:1").status, 2);
    CmdResult vu = atlsctl("audit verify --url http://127.0.0.1:1");
    EXPECT_EQ(vu.status, 3) << vu.out;
    EXPECT_NE(vu.out.find("cannot connect to 127.0.0.1:1"), std::string::npos) << vu.out;
    EXPECT_EQ(atlsctl("audit verify --db " + t.path + " --expect-head 5").status, 2);
    EXPECT_EQ(
        atlsctl("audit verify --db " + t.path + " --expect-head 0:" + std::string(64, 'a')).status,
        2);
    EXPECT_EQ(
        atlsctl("audit verify --db " + t.path + " --expect-head 5:" + std::string(63, 'a')).status,
        2);
    EXPECT_EQ(
        atlsctl("audit list --db " + t.path + " --expect-head 5:" + std::string(64, 'a')).status,
        2);
    CmdResult m = atlsctl("audit verify --db " + t.sub("missing"));
    EXPECT_EQ(m.status, 3); // could not verify at all: not the exit status of a broken chain
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
    EXPECT_EQ(v.status, 3) << v.out;
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

// Writes 6 decisions from 2 workers with the store paused, so that the store thread's drain
// order (global seq: worker 0's three, then worker 1's) is not their key (time) order.
// Returns the keys in global seq order.
std::vector<struct store_key> write_two_workers(const std::string &dir) {
    struct store_config cfg = config_for(dir);
    struct store *s = nullptr;
    char err[STORE_ERR_BYTES] = "";
    EXPECT_EQ(store_open(&s, err, sizeof(err), &cfg, 2), 0) << err;
    store_set_paused(s, true);
    const uint64_t t = 1732272000000000000ULL, ms = 1000000;
    const struct {
        uint32_t worker;
        uint64_t at_ms;
    } pushes[] = {{0, 0}, {0, 2}, {1, 1}, {1, 3}, {0, 4}, {1, 5}};
    std::vector<struct store_key> w0, w1; // each worker's 3 records, in push order
    for (const auto &p : pushes) {
        Record r(t + p.at_ms * ms,
                 p.at_ms % 2 ? ATLS__VERDICT__VERDICT_DENIED : ATLS__VERDICT__VERDICT_ALLOWED);
        uint64_t seq = push_ok(s, p.worker, &r.rec);
        (p.worker == 0 ? w0 : w1).push_back({r.rec.time_ns, p.worker, seq});
    }
    store_set_paused(s, false);
    EXPECT_TRUE(wait_durable(s, 0, 3));
    EXPECT_TRUE(wait_durable(s, 1, 3));
    store_close(s);
    // In chain (global seq) order, read back: which worker's ring the store drains first depends
    // on how many empty drains it ran before the pause (rr_next), so it is not fixed here.
    std::vector<struct store_key> chain;
    Tamper raw(dir);
    for (uint64_t g = 1; g <= 6; g++) {
        struct store_key k {};
        std::string v = raw.chain_value(g);
        EXPECT_EQ(store_key_decode(&k, (const uint8_t *)v.data(), STORE_KEY_BYTES), 0);
        chain.push_back(k);
    }
    EXPECT_EQ(chain.size() + w0.size() + w1.size(), 12u);
    return chain;
}

std::string head_line(const std::string &out) {
    size_t at = out.find("\nhead ");
    return at == std::string::npos ? "" : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
}

// The API lists records newest first by key (time, worker, seq); the chain is in global seq
// order, which with two workers is not the same order. Verify over the API sorts by global seq.
TEST(AtlsctlAudit, UrlVerifyFollowsTheChainAcrossWorkersNotTheListingOrder) {
    TempDir t;
    auto keys = write_two_workers(t.path); // chain order
    // Whichever ring the store drained first, the chain is not in time order: some record comes
    // before an older one.
    bool out_of_time_order = false;
    for (size_t i = 1; i < keys.size(); i++) {
        out_of_time_order |= keys[i - 1].time_ns > keys[i].time_ns;
    }
    ASSERT_TRUE(out_of_time_order);
    CmdResult d = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(d.status, 0) << d.out;
    ApiServer api(t.path, 2);
    CmdResult u = atlsctl("audit verify --url " + api.url());
    EXPECT_EQ(u.status, 0) << u.out;
    EXPECT_NE(u.out.find("6 records (global seq 1..6)"), std::string::npos) << u.out;
    // Both print the same head, which pins the chain for a later verify either way.
    std::string head = head_line(d.out);
    EXPECT_EQ(head.size(), 5u + 2u + 64u) << d.out;
    EXPECT_EQ(head.rfind("head 6 ", 0), 0u) << d.out;
    EXPECT_EQ(head_line(u.out), head) << u.out;
    std::string pin = "6:" + head.substr(7);
    EXPECT_EQ(atlsctl("audit verify --db " + t.path + " --expect-head " + pin).status, 0);
    EXPECT_EQ(atlsctl("audit verify --url " + api.url() + " --expect-head " + pin).status, 0);
}

// A copy of the genesis record with an older time and another user (outside the chain): every
// record after the first must be checked too, and two records cannot hold one position.
TEST(AtlsctlAudit, UrlVerifyNamesARecordInsertedBeforeTheGenesis) {
    TempDir t;
    auto keys = write_db(t.path, 6); // one worker: listing order is the reverse chain order
    struct store_key forged = keys[0];
    forged.time_ns -= 1000000;
    {
        Tamper raw(t.path);
        Atls__AuditRecord *r = raw.record(1);
        ASSERT_NE(r, nullptr);
        char *user = r->db_user;
        uint64_t time_ns = r->time_ns;
        r->db_user = (char *)"forged";
        r->time_ns = forged.time_ns;
        std::string v(atls__audit_record__get_packed_size(r), '\0');
        atls__audit_record__pack(r, (uint8_t *)&v[0]);
        r->db_user = user;
        r->time_ns = time_ns;
        atls__audit_record__free_unpacked(r, nullptr);
        raw.put(STORE_CF_RECORDS, key_bytes(forged), v);
    }
    ApiServer api(t.path, 2);
    CmdResult u = atlsctl("audit verify --url " + api.url());
    EXPECT_EQ(u.status, 1) << u.out;
    EXPECT_NE(u.out.find("BROKEN (INSERTED)"), std::string::npos) << u.out;
    EXPECT_NE(u.out.find("both claim global seq 1"), std::string::npos) << u.out;
    EXPECT_NE(u.out.find(key_text(forged)), std::string::npos) << u.out;
    CmdResult d = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(d.status, 1) << d.out;
    EXPECT_NE(d.out.find("BROKEN (INSERTED)"), std::string::npos) << d.out;
}

TEST(AtlsctlAudit, UrlVerifyNamesARemovedOrAlteredRecordAcrossWorkers) {
    TempDir t;
    auto keys = write_two_workers(t.path);
    {
        Tamper raw(t.path);
        raw.del(STORE_CF_RECORDS, key_bytes(keys[2])); // global seq 3
    }
    {
        ApiServer api(t.path, 2);
        CmdResult u = atlsctl("audit verify --url " + api.url());
        EXPECT_EQ(u.status, 1) << u.out;
        EXPECT_NE(u.out.find("BROKEN (REMOVED): record(s) with global seq 3..3 missing between " +
                             key_text(keys[1]) + " and " + key_text(keys[3])),
                  std::string::npos)
            << u.out;
    }
    TempDir t2;
    keys = write_two_workers(t2.path);
    {
        Tamper raw(t2.path);
        std::string v = raw.get(STORE_CF_RECORDS, key_bytes(keys[3]));
        v[v.size() / 2] ^= 1; // inside the report bytes: still decodes
        raw.put(STORE_CF_RECORDS, key_bytes(keys[3]), v);
    }
    ApiServer api(t2.path, 2);
    CmdResult u = atlsctl("audit verify --url " + api.url());
    EXPECT_EQ(u.status, 1) << u.out;
    EXPECT_NE(u.out.find("BROKEN (ALTERED): record " + key_text(keys[3]) + " (global seq 4)"),
              std::string::npos)
        << u.out;
}

// Exit 1 is a broken trail, exit 3 a trail that could not be read.
TEST(AtlsctlAudit, VerifyReportsAnUndecodableHeadAsBrokenAndAnUnreadableTrailAsExit3) {
    TempDir t;
    write_db(t.path, 3);
    {
        Tamper raw(t.path);
        raw.put(STORE_CF_META, STORE_META_HEAD, "xx");
    }
    CmdResult v = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(v.status, 1) << v.out;
    EXPECT_NE(v.out.find("audit chain BROKEN (CORRUPT): the chain head (meta \"head\") does not "
                         "decode"),
              std::string::npos)
        << v.out;
    TempDir empty;
    CmdResult e = atlsctl("audit verify --db " + empty.path);
    EXPECT_EQ(e.status, 3) << e.out;
    EXPECT_NE(e.out.find("cannot verify"), std::string::npos) << e.out;
}

// The documented limit and its remedy, from the command line: removing the newest records and
// rewriting the head, or removing the oldest and forging the anchor, verifies intact; the head
// printed before, passed back with --expect-head, does not.
TEST(AtlsctlAudit, ExpectHeadCatchesATruncatedTailAndAForgedAnchor) {
    TempDir t;
    write_db(t.path, 6);
    CmdResult before = atlsctl("audit verify --db " + t.path);
    ASSERT_EQ(before.status, 0) << before.out;
    std::string head = head_line(before.out);
    ASSERT_EQ(head.rfind("head 6 ", 0), 0u) << before.out;
    std::string pin = "6:" + head.substr(7);
    {
        Tamper raw(t.path);
        std::string d4 = raw.digest(4);
        raw.drop(6);
        raw.drop(5);
        raw.put_pos(STORE_META_HEAD, 4, d4);
    }
    CmdResult plain = atlsctl("audit verify --db " + t.path);
    EXPECT_EQ(plain.status, 0) << plain.out;
    EXPECT_NE(plain.out.find("intact: 4 records"), std::string::npos) << plain.out;
    CmdResult pinned = atlsctl("audit verify --db " + t.path + " --expect-head " + pin);
    EXPECT_EQ(pinned.status, 1) << pinned.out;
    EXPECT_NE(pinned.out.find("BROKEN (EXPECTED HEAD): expected head record 6 is past the "
                              "chain's head 4"),
              std::string::npos)
        << pinned.out;
    {
        ApiServer api(t.path, 2);
        CmdResult u = atlsctl("audit verify --url " + api.url());
        EXPECT_EQ(u.status, 0) << u.out;
        u = atlsctl("audit verify --url " + api.url() + " --expect-head " + pin);
        EXPECT_EQ(u.status, 1) << u.out;
        EXPECT_NE(u.out.find("BROKEN (EXPECTED HEAD): expected head record 6 is past the served "
                             "head 4"),
                  std::string::npos)
            << u.out;
    }

    TempDir t2;
    write_db(t2.path, 3);
    before = atlsctl("audit verify --db " + t2.path);
    ASSERT_EQ(before.status, 0) << before.out;
    head = head_line(before.out);
    ASSERT_EQ(head.rfind("head 3 ", 0), 0u) << before.out;
    pin = "3:" + head.substr(7);
    write_db(t2.path, 3, 1000000000); // three more records, a second later: global seq 4..6
    {
        Tamper raw(t2.path);
        Atls__AuditRecord *r4 = raw.record(4);
        ASSERT_NE(r4, nullptr);
        std::string prev4((const char *)r4->prev_sha256.data, r4->prev_sha256.len);
        atls__audit_record__free_unpacked(r4, nullptr);
        for (uint64_t g = 1; g <= 3; g++) {
            raw.drop(g);
        }
        raw.put_pos(STORE_META_ANCHOR, 4, prev4);
    }
    plain = atlsctl("audit verify --db " + t2.path);
    EXPECT_EQ(plain.status, 0) << plain.out;
    EXPECT_NE(plain.out.find("intact: 3 records (global seq 4..6)"), std::string::npos)
        << plain.out;
    pinned = atlsctl("audit verify --db " + t2.path + " --expect-head " + pin);
    EXPECT_EQ(pinned.status, 1) << pinned.out;
    EXPECT_NE(pinned.out.find("BROKEN (EXPECTED HEAD): expected head record 3 is no longer in "
                              "the chain (it starts at 4)"),
              std::string::npos)
        << pinned.out;
}

} // namespace
