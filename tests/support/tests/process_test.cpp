#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
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

TEST(Process, EmulatorIsPutBeforeProgramsOfThisMachineOnly) {
  // A stand-in emulator that prints the command line it was given, and a script (no ELF file).
  pb::test::TempDir dir;
  const auto emulator = dir.path() / "emu";
  const auto plain = dir.path() / "plain";
  for (const auto& [file, text] :
       {std::pair{emulator, "echo \"emulated: $*\""}, std::pair{plain, "echo plain"}}) {
    std::ofstream(file) << "#!/bin/sh\n" << text << "\n";
    std::filesystem::permissions(file, std::filesystem::perms::owner_all);
  }
  const char* outer = std::getenv("PB_TEST_EMULATOR");
  const std::string saved = outer != nullptr ? outer : "";
  ::setenv("PB_TEST_EMULATOR", (emulator.string() + "  -L /").c_str(), 1);
  // This test program is an ELF file of this machine; a shell script is not.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  Process own({self, "--gtest_list_tests"});
  Process script({plain.string()});
  if (outer != nullptr)
    ::setenv("PB_TEST_EMULATOR", saved.c_str(), 1);
  else
    ::unsetenv("PB_TEST_EMULATOR");
  EXPECT_EQ(own.wait_exit(10s), 0);
  EXPECT_EQ(own.stdout_lines(), std::vector<std::string>{"emulated: -L / " + self + " --gtest_list_tests"});
  EXPECT_EQ(script.wait_exit(10s), 0);
  EXPECT_EQ(script.stdout_lines(), std::vector<std::string>{"plain"});
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
