// N virtual sockets on one io_context, driven by a single 50 ms meter timer, plus the text
// control commands of the plugsim executable.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugsim/events.hpp"
#include "plugsim/latency_stats.hpp"
#include "plugsim/tls_transport.hpp"
#include "plugsim/virtual_socket.hpp"

namespace plugsim {

struct SimulatorOptions {
  boost::asio::ip::tcp::endpoint gateway;
  std::vector<SocketSpec> sockets;
  // One state file per socket ("<cid>.state"); none = in-memory, boot counter from the wall clock.
  std::optional<std::filesystem::path> state_dir;
  // With state_dir: "<cid>.flash" files holding the firmware's flash log (pbfw::FlashStorage) instead.
  bool flash_state = false;
  TransportOptions transport;
  // First connections are spread over this window so N sockets do not handshake at once.
  std::chrono::milliseconds start_spread{0};
};

class Simulator {
 public:
  enum class ControlResult { Ok, Quit, Error };

  Simulator(boost::asio::io_context& io, SimulatorOptions options, EventSink& events);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  void start();  // boots every socket, starts connecting and the meter timer
  void stop();   // closes every connection, stops the timer

  // "load CID WATTS", "button CID", "disconnect CID", "quit"; errors are logged.
  // "stats" emits a stats event (see stats_json); "stats reset" restarts the latency window.
  ControlResult control(std::string_view line);

  size_t size() const { return sockets_.size(); }
  VirtualSocket& socket(size_t i) { return *sockets_[i]; }
  VirtualSocket* find(std::string_view cid);

  // {"ev":"stats","sockets":N,"sessions_up":U,"unacked":R,"dropped":D,"acked":A,
  //  "latency_ms":{"p50","p90","p99","max","mean"}}: record creation → Ack since start or last reset.
  std::string stats_json() const;
  LatencyStats& latency() { return latency_; }

 private:
  void arm_meter_timer();

  boost::asio::io_context& io_;
  SimulatorOptions options_;
  EventSink& events_;
  boost::asio::ssl::context tls_;
  std::vector<std::unique_ptr<VirtualSocket>> sockets_;
  std::unordered_map<std::string, VirtualSocket*> by_cid_;
  boost::asio::steady_timer meter_timer_;
  std::chrono::steady_clock::time_point next_period_;
  bool running_ = false;
  LatencyStats latency_;
};

}  // namespace plugsim
