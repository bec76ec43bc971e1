// tools/tuya-edge-emu/run: broker + emulator in one command, broker stopped when it exits.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/testsupport.hpp"

namespace {

using namespace std::chrono_literals;

std::unique_ptr<pb::test::Process> start_run(const pb::test::TempDir& dir, uint16_t port) {
  return std::make_unique<pb::test::Process>(
      std::vector<std::string>{(pb::test::source_dir() / "tools/tuya-edge-emu/run").string(),
                               (dir.path() / "broker").string(), "--port", std::to_string(port),
                               "--gateway-id", "gw-run", "--username", "u1"},
      std::map<std::string, std::string>{
          {"PB_BIN_DIR", pb::test::binary("pb-tuya-emu").parent_path().string()}});
}

TEST(RunScript, CommandsFlowAndQuitStopsBroker) {
  pb::test::TempDir dir;
  const uint16_t port = pb::test::free_tcp_port();
  auto run = start_run(dir, port);
  ASSERT_TRUE(run->wait_for_stdout(std::regex(R"("event":"subscribed")"), 15s)) << run->describe();
  run->write_stdin("command c1 1 true rid-run-1");
  // The broker echoes the command back to the emulator's own subscription.
  EXPECT_TRUE(run->wait_for_stdout(std::regex(R"("dir":"in".*rid-run-1)"), 5s)) << run->describe();
  run->write_stdin("quit");
  EXPECT_EQ(run->wait_exit(10s), 0) << run->describe();
  EXPECT_TRUE(pb::test::wait_until([&] { return !pb::test::port_accepts(port); }, 5s));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "broker/mosquitto.log"));
}

TEST(RunScript, SigtermStopsBroker) {
  pb::test::TempDir dir;
  const uint16_t port = pb::test::free_tcp_port();
  auto run = start_run(dir, port);
  ASSERT_TRUE(run->wait_for_stdout(std::regex(R"("event":"subscribed")"), 15s)) << run->describe();
  run->signal(SIGTERM);
  EXPECT_EQ(run->wait_exit(10s), 143) << run->describe();
  EXPECT_TRUE(pb::test::wait_until([&] { return !pb::test::port_accepts(port); }, 5s));
}

}  // namespace
