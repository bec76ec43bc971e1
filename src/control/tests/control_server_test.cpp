// The control socket server with a fake handler: framing, ordering, errors, permissions,
// stale socket files, shutdown.
#include "plugbridge/control/control_server.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "support/testsupport.hpp"

namespace pb::control {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using boost::asio::local::stream_protocol;
using namespace std::chrono_literals;

// A server on its own io thread; handler echoes {"ok":true,"echo":request} unless told otherwise.
class Fixture : public ::testing::Test {
 protected:
  void start(Handler h = {}, ServerOptions o = {}) {
    if (!h) h = [](const json& req, Reply reply) { reply({{"ok", true}, {"echo", req}}); };
    o.path = sock_path();
    server_ = std::make_unique<Server>(io_, o, std::move(h));
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      boost::asio::post(io_, [this] { server_.reset(); });
      work_.reset();
      thread_.join();
    }
  }
  std::string sock_path() const { return (dir_.path() / "c.sock").string(); }

  // A blocking client.
  struct Client {
    boost::asio::io_context io;
    stream_protocol::socket s{io};
    boost::asio::streambuf buf;
    explicit Client(const std::string& path) { s.connect(stream_protocol::endpoint(path)); }
    void send(const std::string& raw) { boost::asio::write(s, boost::asio::buffer(raw)); }
    // Next line, or "" at EOF.
    std::string line() {
      boost::system::error_code ec;
      size_t n = boost::asio::read_until(s, buf, '\n', ec);
      if (ec) return "";
      std::string l(boost::asio::buffers_begin(buf.data()), boost::asio::buffers_begin(buf.data()) + n - 1);
      buf.consume(n);
      return l;
    }
    json request(const json& j) {
      send(j.dump() + "\n");
      return json::parse(line());
    }
  };

  pb::test::TempDir dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(Fixture, RequestResponseWithIdEchoedAndPipelinedInOrder) {
  start();
  Client c(sock_path());
  json r = c.request({{"cmd", "status"}, {"id", 7}});
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["echo"]["cmd"], "status");
  // Three requests in one write, blank line and CRLF included.
  c.send("{\"n\":1}\n\n{\"n\":2}\r\n{\"n\":3}\n");
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(json::parse(c.line())["echo"]["n"], i);
}

TEST_F(Fixture, BadJsonIsAnsweredAndTheConnectionStaysUsable) {
  start();
  Client c(sock_path());
  c.send("this is not json\n");
  json r = json::parse(c.line());
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["error"], "bad_request");
  EXPECT_EQ(c.request({{"cmd", "x"}})["ok"], true);
}

TEST_F(Fixture, LateRepliesAndRepliesTwice) {
  boost::asio::steady_timer timer(io_);
  start([&](const json&, Reply reply) {
    timer.expires_after(50ms);
    timer.async_wait([reply](const boost::system::error_code&) {
      reply({{"ok", true}, {"late", true}});
      reply({{"ok", true}, {"late", "again"}});  // ignored
    });
  });
  Client c(sock_path());
  EXPECT_EQ(c.request({{"cmd", "a"}})["late"], true);
  EXPECT_EQ(c.request({{"cmd", "b"}})["late"], true);
}

TEST_F(Fixture, OverlongLineClosesTheConnection) {
  ServerOptions o;
  o.max_line = 128;
  start({}, o);
  Client c(sock_path());
  c.send(std::string(300, 'x') + "\n");
  EXPECT_EQ(c.line(), "");  // EOF
  Client c2(sock_path());
  EXPECT_EQ(c2.request({{"cmd", "x"}})["ok"], true);
}

TEST_F(Fixture, SocketFileModeIs0660AndRemovedOnStop) {
  start();
  struct stat st {};
  ASSERT_EQ(::stat(sock_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  std::promise<void> stopped;
  boost::asio::post(io_, [&] {
    server_->stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  EXPECT_FALSE(fs::exists(sock_path()));
}

TEST_F(Fixture, StaleSocketFileIsReplaced) {
  {
    boost::asio::io_context other;
    stream_protocol::acceptor a(other, stream_protocol::endpoint(sock_path()));
  }  // closed without unlink: a stale file, nobody listening
  ASSERT_TRUE(fs::exists(sock_path()));
  start();
  Client c(sock_path());
  EXPECT_EQ(c.request({{"cmd", "x"}})["ok"], true);
}

TEST_F(Fixture, RefusesWhenSomeoneListensOrThePathIsNotASocket) {
  start();
  boost::asio::io_context io2;
  try {
    Server second(io2, ServerOptions{.path = sock_path()}, [](const json&, Reply r) { r({}); });
    FAIL() << "a second server started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("already listens"), std::string::npos) << e.what();
  }
  std::string file = (dir_.path() / "plain").string();
  std::ofstream(file) << "x";
  try {
    Server third(io2, ServerOptions{.path = file}, [](const json&, Reply r) { r({}); });
    FAIL() << "started on a plain file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
  }
  try {
    Server fourth(io2, ServerOptions{.path = (dir_.path() / "missing/dir/c.sock").string()},
                  [](const json&, Reply r) { r({}); });
    FAIL() << "started in a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot bind"), std::string::npos) << e.what();
  }
}

TEST_F(Fixture, ClientVanishingBeforeTheReplyIsHarmless) {
  std::promise<Reply> pending;
  bool first = true;
  start([&](const json&, Reply reply) {
    if (std::exchange(first, false)) return pending.set_value(std::move(reply));
    reply({{"ok", true}});
  });
  Client c(sock_path());
  c.send("{\"cmd\":\"x\"}\n");
  Reply r = pending.get_future().get();
  c.s.close();
  std::promise<void> done;
  boost::asio::post(io_, [&] {
    r({{"ok", true}});  // writes into a closed connection (no SIGPIPE), the session goes away
    done.set_value();
  });
  done.get_future().wait();
  Client c2(sock_path());
  EXPECT_EQ(c2.request({{"cmd", "y"}})["ok"], true);
}

}  // namespace
}  // namespace pb::control
