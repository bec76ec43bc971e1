// plugsim scenario controls (stdin lines, or called by tests): load profiles, button presses through
// the firmware's debounced input, mains loss (the socket reboots from its storage), Wi-Fi / gateway loss
// (the connection is dropped and kept down for a while).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plugsim/events.hpp"

namespace plugsim {

class Simulator;
class VirtualSocket;

// Watts as a function of the seconds since the profile started.
using LoadProfile = std::function<double(double seconds)>;

// "constant W", "steps W:S,W:S,..." (cycled), "ramp W0 W1 S" (then holds W1), "sine MEAN AMP PERIOD_S".
// Throws std::invalid_argument with a usage hint on anything else.
LoadProfile parse_load_profile(std::string_view spec);

class Scenario {
 public:
  Scenario(boost::asio::io_context& io, Simulator& sim, EventSink& events);
  ~Scenario();
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  // Handles one control line if it is a scenario command:
  //   profile CID off|SPEC            load profile (see parse_load_profile); off = keep the last watts
  //   press CID MS                    button held MS milliseconds (click < 5 s, provisioning 5..10 s)
  //   hold CID S                      button held S seconds (>= 10 s: factory reset)
  //   power-cut CID S                 mains loss for S seconds: relay drops, link down, then reboot
  //   wifi-loss CID S                 that socket's connection dropped and kept down for S seconds
  //   gateway-loss S                  every socket's connection dropped and kept down for S seconds
  // Returns false if the line is not a scenario command (the caller passes it on); errors are logged and
  // reported through `ok`.
  bool control(std::string_view line, bool& ok);
  // Cancels pending actions (releases, power restores, outage ends) so the io_context can finish.
  void stop();

  // The same actions for tests.
  void set_profile(VirtualSocket& s, LoadProfile profile);
  void press(VirtualSocket& s, std::chrono::milliseconds held);
  void power_cut(VirtualSocket& s, std::chrono::milliseconds off);
  void link_outage(VirtualSocket& s, std::chrono::milliseconds down, const char* why);

 private:
  void after(std::chrono::milliseconds delay, std::function<void()> action);
  void arm_profile_timer();

  boost::asio::io_context& io_;
  Simulator& sim_;
  EventSink& events_;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> timers_;  // each owned by its pending handler
  std::shared_ptr<bool> alive_;
  struct Profiled {
    LoadProfile profile;
    std::chrono::steady_clock::time_point start;
  };
  std::map<VirtualSocket*, Profiled> profiles_;
  boost::asio::steady_timer profile_timer_;
  bool profile_timer_armed_ = false;
};

}  // namespace plugsim
