// `plugbridge provision` in-process: roster appended as text (comments kept), unique identities across
// runs, HEX images that decode to a valid device-information page, and the exit codes of bad input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <pbfw/device_info.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "context.hpp"
#include "plugbridge/cli/cli.hpp"
#include "plugbridge/config/config.hpp"
#include "plugbridge/ihex/intel_hex.hpp"
#include "roster_writer.hpp"

namespace pb::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfig =
    "# plant gateway\n"
    "gateway_id: g\n"
    "uplink: {enabled: false}   # no cloud here\n"
    "database: pb.db\n"
    "\n"
    "# The sockets on the shop floor.\n"
    "sockets:\n"
    "    # the kettle, first unit\n"
    "  - cid: kettle\n"
    "    product_id: p\n"
    "    secret: 5f3a9c1e7b2d48e06a91c3f7d2b8e415\n"
    "  - cid: socket-0007   # provisioned by hand\n"
    "    product_id: p\n"
    "    secret: c4e81b7f29a05d36e7f2a9c14b6d3085\n"
    "\n"
    "# Keep raw readings for a year.\n"
    "retention:\n"
    "  raw_days: 365\n";

struct Result {
  int code;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class ProvisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "pbprov-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    std::ofstream(config_path()) << kConfig;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path config_path() const { return dir_ / "plugbridge.yaml"; }
  fs::path out_dir() const { return dir_ / "hex"; }
  fs::path control_socket() const { return dir_ / "control.sock"; }

  Result run(std::vector<std::string> args) {
    std::ostringstream out, err;
    Terminal term{out, err};
    term.now_ms = 1'795'000'000'000;
    const int code = cli::run(args, term);
    return {code, out.str(), err.str()};
  }
  Result provision(int count, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{
        "--socket",        control_socket().string(), "provision",    "--config", config_path().string(),
        "--count",         std::to_string(count),     "--product-id", "pbsock1",  "--out",
        out_dir().string()};
    if (std::find(extra.begin(), extra.end(), "--gateway") == extra.end())
      args.insert(args.end(), {"--gateway", "192.168.1.10:6690"});
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }

  fs::path dir_;
};

// Every line of `before` is still in `after`, in order, unchanged.
void expect_lines_kept(const std::string& before, const std::string& after) {
  std::istringstream b(before), a(after);
  std::string want, got;
  while (std::getline(b, want)) {
    bool found = false;
    while (std::getline(a, got)) {
      if (got == want) {
        found = true;
        break;
      }
    }
    EXPECT_TRUE(found) << "line lost or changed: '" << want << "'";
  }
}

TEST_F(ProvisionTest, AppendsSocketsKeepingExistingOnesAndComments) {
  const Result r = provision(3);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = slurp(config_path());
  expect_lines_kept(kConfig, text);
  // The new items sit in the sockets list, before the comment that introduces `retention:`.
  EXPECT_LT(text.find("socket-0010"), text.find("# Keep raw readings"));

  const config::Config cfg = config::load_file(config_path().string());
  ASSERT_EQ(cfg.sockets.size(), 5u);
  EXPECT_EQ(cfg.sockets[0].cid, "kettle");
  EXPECT_EQ(cfg.sockets[1].cid, "socket-0007");
  EXPECT_EQ(cfg.sockets[2].cid, "socket-0008");  // continues after the highest number in use
  EXPECT_EQ(cfg.sockets[4].cid, "socket-0010");
  EXPECT_EQ(cfg.history.raw_days, 365);
  for (size_t i = 2; i < 5; ++i) {
    EXPECT_EQ(cfg.sockets[i].product_id, "pbsock1");
    EXPECT_EQ(cfg.sockets[i].secret.size(), 16u);
    EXPECT_TRUE(fs::exists(out_dir() / (cfg.sockets[i].cid + ".hex")));
    EXPECT_EQ(fs::status(out_dir() / (cfg.sockets[i].cid + ".hex")).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
  }
  EXPECT_NE(r.out.find("added 3 sockets"), std::string::npos) << r.out;
}

TEST_F(ProvisionTest, TwoRunsNeverRepeatACidOrASecret) {
  ASSERT_EQ(provision(20).code, 0);
  ASSERT_EQ(provision(20, {"--prefix", "kettle"}).code, 0);
  ASSERT_EQ(provision(20).code, 0);
  const config::Config cfg = config::load_file(config_path().string());  // itself rejects duplicates
  ASSERT_EQ(cfg.sockets.size(), 62u);
  std::set<std::string> cids;
  std::set<std::vector<uint8_t>> secrets;
  for (const auto& s : cfg.sockets) {
    EXPECT_TRUE(cids.insert(s.cid).second) << s.cid;
    EXPECT_TRUE(secrets.insert(s.secret).second) << s.cid;
  }
  EXPECT_TRUE(cids.count("kettle-0001"));  // "kettle" itself has no number: the sequence starts at 1
  EXPECT_TRUE(cids.count("socket-0047"));
}

pbfw::DeviceInfo decode_hex(const fs::path& file, uint32_t page_address, pbfw::DeviceInfoStatus expect) {
  const auto mem = ihex::parse(slurp(file));
  EXPECT_FALSE(mem.empty());
  std::vector<uint8_t> page(4096, 0xFF);  // erased flash
  for (const auto& [addr, byte] : mem) {
    EXPECT_GE(addr, page_address);
    EXPECT_LT(addr, page_address + page.size());
    if (addr >= page_address && addr < page_address + page.size()) page[addr - page_address] = byte;
  }
  pbfw::DeviceInfo info{};
  EXPECT_EQ(pbfw::decode_device_info(page.data(), page.size(), info), expect);
  return info;
}

// Concurrent runs never wait on each other: each either writes its sockets or is refused having
// written nothing, and no two sockets share a cid or key.
TEST_F(ProvisionTest, ConcurrentRunsOnOneRosterNeverCollide) {
  std::vector<std::thread> runs;
  std::vector<Result> results(4);
  for (size_t i = 0; i < results.size(); ++i) runs.emplace_back([&, i] { results[i] = provision(10); });
  for (auto& t : runs) t.join();
  size_t written = 0;
  for (const Result& r : results) {
    if (r.code == 0) {
      ++written;
    } else {
      EXPECT_EQ(r.code, exit_code::kFailed) << r.err;
      EXPECT_NE(r.err.find("another writer is changing"), std::string::npos) << r.err;
    }
  }
  EXPECT_GE(written, 1u);
  const config::Config cfg = config::load_file(config_path().string());  // rejects duplicate cids/secrets
  EXPECT_EQ(cfg.sockets.size(), 2 + 10 * written);
  for (const auto& s : cfg.sockets) {
    if (s.cid == "kettle" || s.cid == "socket-0007") continue;
    EXPECT_TRUE(fs::exists(out_dir() / (s.cid + ".hex"))) << s.cid;
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(out_dir()), fs::directory_iterator()),
            static_cast<std::ptrdiff_t>(10 * written));
}

// The service reads its roster as user plugbridge through group plugbridge: the rewritten file must
// keep owner, group and mode, whoever runs provision.
TEST_F(ProvisionTest, RewrittenRosterKeepsOwnerGroupAndMode) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own the file as another user";
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  const gid_t group = nobody->pw_gid;
  ASSERT_EQ(::chown(config_path().c_str(), nobody->pw_uid, group), 0);
  ASSERT_EQ(::chmod(config_path().c_str(), 0640), 0);
  const Result r = provision(2);
  ASSERT_EQ(r.code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(config_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody->pw_uid);
  EXPECT_EQ(st.st_gid, group);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(config::load_file(config_path().string()).sockets.size(), 4u);
}

TEST_F(ProvisionTest, AnotherWriterHoldingTheLockIsRefusedAndNothingIsWritten) {
  const std::string before = slurp(config_path());
  // Another holder of the lock file (flock locks belong to the open file, so this is another writer as
  // far as provision can tell), which wrote its pid into it.
  const fs::path lock_file = dir_ / ".plugbridge.yaml.lock";
  const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::write(fd, "4242\n", 5), 5);
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = provision(1);
  const auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_EQ(r.code, exit_code::kFailed);
  EXPECT_NE(r.err.find("another writer is changing " + config_path().string() + ": process 4242 holds " +
                       lock_file.string()),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("nothing was written: wait for it to finish"), std::string::npos) << r.err;
  EXPECT_LT(took, std::chrono::seconds(2));  // refused at once, not after waiting
  EXPECT_EQ(slurp(config_path()), before);
  EXPECT_FALSE(fs::exists(out_dir() / "socket-0008.hex"));
  // Once released, provision takes the lock file over.
  const Result again = provision(1);
  EXPECT_EQ(again.code, 0) << again.err;
}

TEST_F(ProvisionTest, DaemonNotRunningIsSaidAndTheRosterIsStillWritten) {
  const Result r = provision(1);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("the daemon is not running (nobody answers at " + control_socket().string() +
                       "); start it or run `plugbridge reload` later"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(config::load_file(config_path().string()).sockets.size(), 3u);
}

// A daemon stand-in on the control socket: answers one request with `answer` and records it.
class OneShotDaemon {
 public:
  OneShotDaemon(const fs::path& path, std::string answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 1) != 0)
      throw std::runtime_error("cannot listen on " + path.string());
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[256];
      ssize_t n;
      while (request_.find('\n') == std::string::npos && (n = ::read(c, buf, sizeof buf)) > 0)
        request_.append(buf, static_cast<size_t>(n));
      const std::string line = answer_ + "\n";
      (void)!::write(c, line.data(), line.size());
      ::close(c);
    });
  }
  ~OneShotDaemon() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  std::string answer_, request_;
  int fd_ = -1;
  std::thread thread_;
};

TEST_F(ProvisionTest, DaemonAnswerToTheReloadIsReported) {
  {
    OneShotDaemon d(control_socket(), R"j({"ok":true,"message":"reloaded: 1 added (socket-0008)"})j");
    const Result r = provision(1);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("daemon reloaded: reloaded: 1 added (socket-0008)\n"), std::string::npos) << r.out;
    EXPECT_NE(d.request().find(R"j("cmd":"reload")j"), std::string::npos) << d.request();
  }
  fs::remove(control_socket());
  {
    OneShotDaemon d(control_socket(),
                    R"j({"ok":false,"error":"bad_request","message":"unknown cmd reload"})j");
    const Result r = provision(1);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("the running daemon could not reload (it does not know the command: unknown cmd "
                         "reload); run `sudo systemctl reload plugbridged`"),
              std::string::npos)
        << r.err;
  }
  fs::remove(control_socket());
  {
    OneShotDaemon d(control_socket(),
                    R"j({"ok":false,"error":"config","message":"x.yaml:3: gateway_id: bad"})j");
    const Result r = provision(1);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("the daemon did not reload: x.yaml:3: gateway_id: bad"), std::string::npos) << r.err;
  }
  EXPECT_EQ(config::load_file(config_path().string()).sockets.size(), 5u);
}

TEST_F(ProvisionTest, HexDecodesToAValidPageWithTheRosterIdentity) {
  ASSERT_EQ(provision(2, {"--kv", "1.9", "--ki", "0.95"}).code, 0);
  const config::Config cfg = config::load_file(config_path().string());
  for (size_t i = 2; i < 4; ++i) {
    const auto& s = cfg.sockets[i];
    const pbfw::DeviceInfo info =
        decode_hex(out_dir() / (s.cid + ".hex"), 0x0801B000, pbfw::DeviceInfoStatus::Ok);
    EXPECT_STREQ(info.cid, s.cid.c_str());
    EXPECT_STREQ(info.product_id, "pbsock1");
    ASSERT_EQ(info.psk_len, s.secret.size());
    EXPECT_TRUE(std::equal(s.secret.begin(), s.secret.end(), info.psk));
    EXPECT_STREQ(info.gateway_host, "192.168.1.10");
    EXPECT_EQ(info.gateway_port, 6690);
    EXPECT_EQ(info.kv_e6, 1'900'000u);
    EXPECT_EQ(info.ki_e6, 950'000u);
  }
}

TEST_F(ProvisionTest, G030PageAddressAndDefaultCalibration) {
  ASSERT_EQ(provision(1, {"--mcu", "g030k8", "--gateway", "gw.local:7000"}).code, 0);
  const pbfw::DeviceInfo info =
      decode_hex(out_dir() / "socket-0008.hex", 0x0800B000, pbfw::DeviceInfoStatus::Ok);
  EXPECT_STREQ(info.gateway_host, "gw.local");
  EXPECT_EQ(info.gateway_port, 7000);
  EXPECT_EQ(info.kv_e6, 1'880'000u);
  EXPECT_EQ(info.ki_e6, 1'000'000u);
}

TEST_F(ProvisionTest, CorruptedHexPageFailsTheFirmwareCrc) {
  ASSERT_EQ(provision(1).code, 0);
  auto mem = ihex::parse(slurp(out_dir() / "socket-0008.hex"));
  mem[0x0801B000 + 20] ^= 0x01;  // one bit of the cid
  std::vector<uint8_t> page(4096, 0xFF);
  for (const auto& [addr, byte] : mem) page[addr - 0x0801B000] = byte;
  pbfw::DeviceInfo info{};
  EXPECT_EQ(pbfw::decode_device_info(page.data(), page.size(), info), pbfw::DeviceInfoStatus::BadCrc);
}

TEST_F(ProvisionTest, BadArgumentsExitTwoAndChangeNothing) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases{
      {{"provision", "--config", config_path().string(), "--count", "0", "--product-id", "p", "--gateway",
        "h:1"},
       "--count must be"},
      {{"provision", "--config", config_path().string(), "--count", "1"}, "--product-id is required"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p p", "--gateway",
        "h:1"},
       "--product-id must be"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "h"},
       "--gateway must be HOST:PORT"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "h:70000"},
       "port must be 1..65535"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "gw\",x:6690"},
       "must be a host name or IPv4 address"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p"},
       "--gateway HOST:PORT is required"},  // lan.listen_address defaults to 0.0.0.0
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "h:1", "--prefix", "bad/prefix"},
       "--prefix must be"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "h:1", "--kv", "0"},
       "--kv must be"},
      {{"provision", "--config", config_path().string(), "--count", "1", "--product-id", "p", "--gateway",
        "h:1", "--mcu", "f103"},
       "--mcu"},
  };
  for (const Case& c : cases) {
    const Result r = run(c.args);
    EXPECT_EQ(r.code, exit_code::kUsage) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_EQ(slurp(config_path()), kConfig);
  EXPECT_FALSE(fs::exists(out_dir()));
}

TEST_F(ProvisionTest, UnreadableOrFlowStyleConfigExitsThree) {
  Result r = run({"provision", "--config", (dir_ / "missing.yaml").string(), "--count", "1", "--product-id",
                  "p", "--gateway", "h:1", "--out", out_dir().string()});
  EXPECT_EQ(r.code, exit_code::kNoData) << r.err;

  const std::string flow =
      "gateway_id: g\nuplink: {enabled: false}\nsockets: [{cid: a, product_id: p, secret: "
      "5f3a9c1e7b2d48e06a91c3f7d2b8e415}]\n";
  std::ofstream(config_path()) << flow;
  r = provision(2);
  EXPECT_EQ(r.code, exit_code::kNoData);
  EXPECT_NE(r.err.find("flow style"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(config_path()), flow);
  EXPECT_TRUE(fs::is_empty(out_dir())) << "no HEX file may outlive a roster that was not written";
}

TEST_F(ProvisionTest, ExistingHexFileIsNotOverwritten) {
  fs::create_directories(out_dir());
  std::ofstream(out_dir() / "socket-0009.hex") << "mine";
  const Result r = provision(3);
  EXPECT_EQ(r.code, exit_code::kFailed);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(out_dir() / "socket-0009.hex"), "mine");
  EXPECT_FALSE(fs::exists(out_dir() / "socket-0008.hex"));
  EXPECT_EQ(slurp(config_path()), kConfig);
}

// A key that looks drawn at random (the parser refuses repeated or counting patterns).
NewSocket sock(const std::string& cid, uint8_t seed) {
  std::vector<uint8_t> key(16);
  for (unsigned i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(seed * 73 + i * i * 29 + i * 11);
  return {cid, "p", key};
}

TEST(AppendSockets, CreatesTheListWhenMissing) {
  const std::string text = append_sockets("gateway_id: g\nuplink: {enabled: false}", {sock("a", 1)});
  EXPECT_EQ(text,
            "gateway_id: g\nuplink: {enabled: false}\nsockets:\n  - cid: a\n    product_id: p\n"
            "    secret: 4971d36f45559f23e1d90b771dfd176b\n");
  EXPECT_EQ(config::load_string(text).sockets.size(), 1u);
}

TEST(AppendSockets, EmptyFlowListAndNullBecomeABlockList) {
  for (const std::string v : {"sockets: []  # none yet\n", "sockets:\n", "sockets: ~\n"}) {
    const std::string text = append_sockets(
        "gateway_id: g\nuplink: {enabled: false}\n" + v + "log_level: info\n", {sock("a", 1), sock("b", 2)});
    const config::Config cfg = config::load_string(text);
    ASSERT_EQ(cfg.sockets.size(), 2u) << text;
    EXPECT_EQ(cfg.sockets[1].cid, "b");
    EXPECT_EQ(cfg.log_level, "info");
  }
  EXPECT_NE(append_sockets("sockets: []  # none yet\n", {sock("a", 1)}).find("sockets:  # none yet\n"),
            std::string::npos);
}

TEST(AppendSockets, FollowsTheIndentationOfExistingItems) {
  const std::string base =
      "gateway_id: g\nuplink: {enabled: false}\nsockets:\n- cid: x\n  product_id: p\n"
      "  secret: 5f3a9c1e7b2d48e06a91c3f7d2b8e415\n---\n";
  const std::string text = append_sockets(base, {sock("a", 1)}, "batch 1");
  EXPECT_NE(text.find("# batch 1\n- cid: a\n  product_id: p\n"), std::string::npos) << text;
  EXPECT_LT(text.find("- cid: a"), text.find("---"));
}

}  // namespace
}  // namespace pb::cli
