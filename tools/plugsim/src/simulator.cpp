#include "plugsim/simulator.hpp"

#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "plugbridge/common/log.hpp"
#include "plugsim/file_flash.hpp"
#include "plugsim/host_hal.hpp"
#include "plugsim/psk_client.hpp"

namespace plugsim {

namespace {

constexpr std::chrono::milliseconds kMeterPeriod{Hlw8032Sim::kFramePeriodMs};

std::unique_ptr<HostStorage> make_storage(const SimulatorOptions& o, const std::string& cid) {
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  if (o.state_dir && o.flash_state) {
    return std::make_unique<FlashFileStorage>(*o.state_dir / (cid + ".flash"),
                                              static_cast<uint32_t>(secs.count()));
  }
  if (o.state_dir) return std::make_unique<FileStorage>(*o.state_dir / (cid + ".state"));
  return std::make_unique<MemoryStorage>(static_cast<uint32_t>(secs.count()));
}

}  // namespace

Simulator::Simulator(boost::asio::io_context& io, SimulatorOptions options, EventSink& events)
    : io_(io),
      options_(std::move(options)),
      events_(events),
      tls_(make_psk_client_context()),
      meter_timer_(io) {
  if (options_.state_dir) std::filesystem::create_directories(*options_.state_dir);
  sockets_.reserve(options_.sockets.size());
  for (const auto& spec : options_.sockets) {
    auto s = std::make_unique<VirtualSocket>(io_, tls_, options_.gateway, spec,
                                             make_storage(options_, spec.cid), events_, options_.transport);
    if (!by_cid_.emplace(spec.cid, s.get()).second)
      throw std::invalid_argument("duplicate socket cid " + spec.cid);
    s->set_latency_stats(&latency_);
    sockets_.push_back(std::move(s));
  }
}

Simulator::~Simulator() {
  stop();
}

void Simulator::start() {
  if (running_) return;
  running_ = true;
  const size_t n = sockets_.size();
  for (size_t i = 0; i < n; ++i) {
    const auto delay = n > 1 ? options_.start_spread * static_cast<int64_t>(i) / static_cast<int64_t>(n)
                             : std::chrono::milliseconds(0);
    sockets_[i]->start(std::chrono::duration_cast<std::chrono::milliseconds>(delay));
  }
  next_period_ = std::chrono::steady_clock::now() + kMeterPeriod;
  arm_meter_timer();
  PB_LOG(Info, "plugsim") << n << " sockets started, gateway " << options_.gateway;
}

void Simulator::stop() {
  if (!running_) return;
  running_ = false;
  meter_timer_.cancel();
  for (auto& s : sockets_) s->stop();
}

void Simulator::arm_meter_timer() {
  meter_timer_.expires_at(next_period_);
  meter_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !running_) return;
    for (auto& s : sockets_) s->meter_period(Hlw8032Sim::kFramePeriodMs);
    next_period_ += kMeterPeriod;
    // Overloaded or suspended: skip the missed periods instead of bursting to catch up.
    const auto now = std::chrono::steady_clock::now();
    if (now - next_period_ > 20 * kMeterPeriod) {
      PB_LOG(Warning, "plugsim") << "meter timer fell behind, skipping "
                                 << (now - next_period_) / kMeterPeriod << " periods";
      next_period_ = now + kMeterPeriod;
    }
    arm_meter_timer();
  });
}

std::string Simulator::stats_json() const {
  size_t up = 0, unacked = 0;
  uint64_t dropped = 0, coarsened = 0;
  // The cores' LAN clients exist only once start() booted them.
  for (const auto& s : sockets_) {
    if (!running_) break;
    const auto& lan = s->core().lan();
    up += lan.session_up() ? 1 : 0;
    unacked += lan.unacked();
    dropped += lan.dropped();
    coarsened += lan.coarsened();
  }
  return nlohmann::json{{"ev", "stats"},
                        {"sockets", sockets_.size()},
                        {"sessions_up", up},
                        {"unacked", unacked},
                        {"dropped", dropped},
                        {"coarsened", coarsened},
                        {"acked", latency_.count()},
                        {"latency_ms",
                         {{"p50", latency_.percentile_ms(0.50)},
                          {"p90", latency_.percentile_ms(0.90)},
                          {"p99", latency_.percentile_ms(0.99)},
                          {"max", latency_.max_ms()},
                          {"mean", latency_.mean_ms()}}}}
      .dump();
}

VirtualSocket* Simulator::find(std::string_view cid) {
  auto it = by_cid_.find(std::string(cid));
  return it == by_cid_.end() ? nullptr : it->second;
}

Simulator::ControlResult Simulator::control(std::string_view line) {
  std::istringstream in{std::string(line)};
  std::string cmd, cid;
  in >> cmd;
  if (cmd.empty()) return ControlResult::Ok;
  if (cmd == "quit") return ControlResult::Quit;
  if (cmd == "stats") {
    std::string arg;
    in >> arg;
    if (arg == "reset") {
      latency_.reset();
    } else if (arg.empty()) {
      events_.emit(stats_json());
    } else {
      PB_LOG(Warning, "plugsim") << "control: usage: stats [reset]";
      return ControlResult::Error;
    }
    return ControlResult::Ok;
  }
  if (cmd != "load" && cmd != "button" && cmd != "disconnect") {
    PB_LOG(Warning, "plugsim") << "control: unknown command (want load/button/disconnect/stats/quit): "
                               << line;
    return ControlResult::Error;
  }
  in >> cid;
  VirtualSocket* s = find(cid);
  if (s == nullptr) {
    PB_LOG(Warning, "plugsim") << "control: unknown socket '" << cid << "' in: " << line;
    return ControlResult::Error;
  }
  if (cmd == "load") {
    double watts = -1;
    if (!(in >> watts) || watts < 0) {
      PB_LOG(Warning, "plugsim") << "control: usage: load CID WATTS";
      return ControlResult::Error;
    }
    s->set_watts(watts);
  } else if (cmd == "button") {
    s->button_click();
  } else {
    s->drop_connection();
  }
  return ControlResult::Ok;
}

}  // namespace plugsim
