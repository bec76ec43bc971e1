// plugsim scenario controls: load profiles, button presses through the debounced input, power cuts
// (reboot from storage), link outages. The "gateway" here only accepts and closes TCP connections, so
// the tests can see when sockets try to connect.
#include "plugsim/scenario.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "plugsim/simulator.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class CollectingSink : public plugsim::EventSink {
 public:
  void emit(const std::string& json) override { lines.push_back(json); }
  size_t count(const std::string& needle) const {
    size_t n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  }
  std::vector<std::string> lines;
};

// Accepts TCP connections and closes them at once, noting when each arrived.
class ConnectCounter {
 public:
  explicit ConnectCounter(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  std::vector<std::chrono::steady_clock::time_point> accepted;

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      accepted.push_back(std::chrono::steady_clock::now());
      s.close();
      accept();
    });
  }
  tcp::acceptor acceptor_;
};

template <class Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_for(5ms);
    if (io.stopped()) io.restart();
  }
  return true;
}

struct Rig {
  Rig() : gateway(io) {
    plugsim::SimulatorOptions o;
    o.gateway = gateway.endpoint();
    o.sockets.push_back({.cid = "sock-1", .psk = std::vector<uint8_t>(16, 0x11), .watts = 100.0});
    o.transport.backoff_initial = 20ms;
    o.transport.backoff_max = 40ms;
    sim = std::make_unique<plugsim::Simulator>(io, std::move(o), sink);
    scenario = std::make_unique<plugsim::Scenario>(io, *sim, sink);
    sim->start();
  }
  ~Rig() {
    scenario->stop();
    sim->stop();
  }
  bool control(const std::string& line) {
    bool ok = false;
    if (!scenario->control(line, ok)) return sim->control(line) == plugsim::Simulator::ControlResult::Ok;
    return ok;
  }
  plugsim::VirtualSocket& socket() { return sim->socket(0); }
  uint32_t power_mw() { return socket().core().current_reading().power_mw; }

  asio::io_context io;
  ConnectCounter gateway;
  CollectingSink sink;
  std::unique_ptr<plugsim::Simulator> sim;
  std::unique_ptr<plugsim::Scenario> scenario;
};

TEST(ScenarioProfile, Parse) {
  EXPECT_DOUBLE_EQ(plugsim::parse_load_profile("constant 42")(123), 42);
  const auto steps = plugsim::parse_load_profile("steps 100:1,2000:0.5");
  EXPECT_DOUBLE_EQ(steps(0.2), 100);
  EXPECT_DOUBLE_EQ(steps(1.2), 2000);
  EXPECT_DOUBLE_EQ(steps(1.6), 100);  // cycles
  const auto ramp = plugsim::parse_load_profile("ramp 0 1000 10");
  EXPECT_DOUBLE_EQ(ramp(5), 500);
  EXPECT_DOUBLE_EQ(ramp(20), 1000);
  const auto sine = plugsim::parse_load_profile("sine 500 100 60");
  EXPECT_NEAR(sine(15), 600, 1e-9);
  EXPECT_NEAR(sine(45), 400, 1e-9);
  for (const char* bad : {"", "wave 1", "constant", "steps 100", "steps 100:0", "ramp 1 2 0", "constant 5 6"})
    EXPECT_THROW(plugsim::parse_load_profile(bad), std::invalid_argument) << bad;
}

TEST(ScenarioControl, ProfileDrivesTheSimulatedMeter) {
  Rig rig;
  ASSERT_TRUE(rig.control("button sock-1"));
  ASSERT_TRUE(rig.control("profile sock-1 steps 900:0.3,150:0.3"));
  ASSERT_TRUE(run_until(rig.io, [&] { return std::abs(static_cast<int>(rig.power_mw()) - 900000) < 5000; }));
  ASSERT_TRUE(run_until(rig.io, [&] { return std::abs(static_cast<int>(rig.power_mw()) - 150000) < 2000; }));
  ASSERT_TRUE(rig.control("profile sock-1 off"));
  EXPECT_FALSE(rig.control("profile sock-1 wave 3"));
  EXPECT_FALSE(rig.control("profile nobody constant 1"));
}

TEST(ScenarioControl, OverloadTripsAndIsReported) {
  Rig rig;
  ASSERT_TRUE(rig.control("button sock-1"));
  ASSERT_TRUE(rig.control("profile sock-1 ramp 100 1500 0.2"));  // ends at 6.9 A: over the 5 A default
  ASSERT_TRUE(run_until(rig.io, [&] { return !rig.socket().relay_on(); }));
  EXPECT_TRUE(rig.socket().core().over_current_tripped());
  EXPECT_EQ(rig.sink.count(R"("ev":"trip","protection":"over_current")"), 1u);
  EXPECT_EQ(rig.sink.count(R"("cause":"protection")"), 1u);
}

TEST(ScenarioControl, PressGoesThroughTheDebouncedButton) {
  Rig rig;
  ASSERT_FALSE(rig.socket().relay_on());
  ASSERT_TRUE(rig.control("press sock-1 200"));
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.socket().core().button_pressed(); }));
  EXPECT_FALSE(rig.socket().relay_on());  // a click acts on release
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.socket().relay_on(); }));
  EXPECT_EQ(rig.sink.count(R"("cause":"button")"), 1u);
  EXPECT_FALSE(rig.control("press sock-1 soon"));
}

TEST(ScenarioControl, PowerCutRebootsFromStorage) {
  Rig rig;
  ASSERT_TRUE(rig.control("button sock-1"));
  ASSERT_TRUE(rig.socket().relay_on());
  const uint32_t boot = rig.socket().boot();
  ASSERT_TRUE(rig.control("power-cut sock-1 0.3"));
  EXPECT_FALSE(rig.socket().powered());
  EXPECT_FALSE(rig.socket().relay_on());  // the relay drops with the power
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.socket().powered(); }));
  EXPECT_EQ(rig.socket().boot(), boot + 1);
  EXPECT_TRUE(rig.socket().relay_on());  // restored from storage
  EXPECT_EQ(rig.sink.count(R"("cause":"power_on")"), 2u);
  EXPECT_EQ(rig.sink.count(R"("ev":"power")"), 2u);
}

TEST(ScenarioControl, GatewayLossKeepsTheLinkDownForItsDuration) {
  Rig rig;
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.gateway.accepted.size() >= 2; }));
  ASSERT_TRUE(rig.control("gateway-loss 0.5"));
  const auto lost_at = std::chrono::steady_clock::now();
  // Let any connect already in flight land, then expect the next one only after the outage.
  ASSERT_TRUE(run_until(rig.io, [&] { return std::chrono::steady_clock::now() - lost_at >= 100ms; }));
  const size_t before = rig.gateway.accepted.size();
  ASSERT_TRUE(run_until(rig.io, [&] { return rig.gateway.accepted.size() > before; }));
  EXPECT_GE(rig.gateway.accepted[before] - lost_at, 490ms);
  EXPECT_EQ(rig.sink.count(R"("ev":"link_down")"), 1u);

  ASSERT_TRUE(rig.control("wifi-loss sock-1 0.1"));
  EXPECT_FALSE(rig.control("wifi-loss nobody 1"));
  EXPECT_FALSE(rig.control("gateway-loss"));
}

}  // namespace
