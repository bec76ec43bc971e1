#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "support/testsupport.hpp"

namespace {

using namespace std::chrono_literals;
using pb::test::Process;

TEST(Process, CapturesStdoutStderrAndExitCode) {
  Process p({"sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 3"});
  EXPECT_EQ(p.wait_exit(10s), 3);
  EXPECT_TRUE(p.wait_for_stdout(std::regex("^out2$"), 5s));
  EXPECT_TRUE(p.wait_for_stderr(std::regex("err1"), 5s));
  EXPECT_EQ(p.stdout_lines(), (std::vector<std::string>{"out1", "out2"}));
  EXPECT_EQ(p.stderr_lines(), (std::vector<std::string>{"err1"}));
  std::ifstream f(p.stdout_path());
  std::stringstream content;
  content << f.rdbuf();
  EXPECT_EQ(content.str(), "out1\nout2\n");
  EXPECT_FALSE(p.running());
}

TEST(Process, StdinIsAPipe) {
  Process p({"cat"});
  p.write_stdin("hello world");
  EXPECT_TRUE(p.wait_for_stdout(std::regex("^hello world$"), 5s)) << p.describe();
  EXPECT_TRUE(p.running());
  p.close_stdin();
  EXPECT_EQ(p.wait_exit(5s), 0);
}

TEST(Process, WaitForStdoutFailsWhenNothingMatches) {
  Process p({"sh", "-c", "echo something"});
  EXPECT_FALSE(p.wait_for_stdout(std::regex("never"), 200ms));
  // A still-running process with no output must time out too.
  Process q({"cat"});
  EXPECT_FALSE(q.wait_for_stdout(std::regex("x"), 100ms));
}

TEST(Process, SignalGives128PlusSignal) {
  Process p({"sleep", "30"});
  EXPECT_TRUE(p.running());
  EXPECT_EQ(p.wait_exit(50ms), std::nullopt);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(5s), 128 + SIGTERM);
}

TEST(Process, ExtraEnvironment) {
  Process p({"sh", "-c", "echo \"v=$PB_TEST_VALUE\""}, {{"PB_TEST_VALUE", "42"}});
  EXPECT_EQ(p.wait_exit(5s), 0);
  EXPECT_TRUE(p.wait_for_stdout(std::regex("^v=42$"), 5s));
}

TEST(Process, SpawnFailureThrows) {
  EXPECT_THROW(Process({"/nonexistent/pb-no-such-binary"}), std::system_error);
}

TEST(Process, DestructorKillsRunningChild) {
  int pid = 0;
  {
    Process p({"sleep", "30"});
    pid = p.pid();
  }
  // Reaped by the destructor: the pid is no longer our child.
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST(TempDir, CreatedAndRemoved) {
  std::filesystem::path path;
  {
    pb::test::TempDir d;
    path = d.path();
    EXPECT_TRUE(std::filesystem::is_directory(path));
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms(0755));
    std::ofstream(path / "f") << "x";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(FreeTcpPort, NonZeroAndVaries) {
  const auto a = pb::test::free_tcp_port();
  EXPECT_NE(a, 0);
}

TEST(WaitUntil, TrueAndTimeout) {
  int calls = 0;
  EXPECT_TRUE(pb::test::wait_until([&] { return ++calls >= 3; }, 5s));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(pb::test::wait_until([] { return false; }, 50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
}

TEST(Binary, HonoursEnvironment) {
  ::setenv("PB_BIN_DIR", "/some/where", 1);
  EXPECT_EQ(pb::test::binary("x"), std::filesystem::path("/some/where/x"));
  ::unsetenv("PB_BIN_DIR");
  EXPECT_EQ(pb::test::binary("pb-tuya-emu").filename(), "pb-tuya-emu");
  EXPECT_TRUE(std::filesystem::exists(pb::test::binary("pb-tuya-emu")));
}

}  // namespace

namespace {
TEST(OpenSsl, AtexitCleanupDisabled) {
  EXPECT_TRUE(pb::test::openssl_atexit_disabled());
}
}  // namespace
