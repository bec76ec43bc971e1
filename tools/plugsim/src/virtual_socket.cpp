#include "plugsim/virtual_socket.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <pbfw/proto_names.hpp>

#include "plugbridge/common/log.hpp"
#include "plugsim/esp_at_link.hpp"

namespace plugsim {

namespace proto = pbfw::proto;
using nlohmann::json;

// The chip's registers follow the board's true constant; the decoder's configured ki_e6 then reads
// meter_gain x the true current and power.
uint32_t true_ki_e6(const SocketSpec& spec) {
  return static_cast<uint32_t>(std::lround(spec.ki_e6 / (spec.meter_gain > 0 ? spec.meter_gain : 1.0)));
}

namespace {

pbfw::SocketConfig make_config(const SocketSpec& spec) {
  pbfw::SocketConfig c{};
  c.cid = spec.cid.c_str();
  c.fw_version = VirtualSocket::kFwVersion;
  c.kv_e6 = spec.kv_e6;
  c.ki_e6 = spec.ki_e6;
  c.reading_interval_ms = spec.reading_interval_ms;
  c.current_limit_ma = spec.current_limit_ma;
  c.persist_interval_ms = spec.persist_interval_ms;
  return c;
}

std::unique_ptr<Link> make_link(boost::asio::io_context& io, boost::asio::ssl::context& tls,
                                const boost::asio::ip::tcp::endpoint& gateway, PskCredentials creds,
                                TransportListener& listener, const TransportOptions& options) {
  if (options.link == LinkKind::EspAt) {
    return std::make_unique<EspAtLink>(io, tls, gateway, std::move(creds), listener, options);
  }
  return std::make_unique<TlsTransport>(io, tls, gateway, std::move(creds), listener, options);
}

}  // namespace

VirtualSocket::VirtualSocket(boost::asio::io_context& io, boost::asio::ssl::context& tls,
                             const boost::asio::ip::tcp::endpoint& gateway, SocketSpec spec,
                             std::unique_ptr<HostStorage> storage, EventSink& events,
                             TransportOptions transport_options)
    : spec_(std::move(spec)),
      events_(events),
      storage_(std::move(storage)),
      meter_(spec_.kv_e6, true_ki_e6(spec_)),
      transport_(make_link(io, tls, gateway, PskCredentials{spec_.cid, spec_.psk}, *this, transport_options)),
      records_(std::make_unique<pbfw::Record[]>(kResendCapacity)),
      config_(make_config(spec_)),
      core_(hal_, *storage_, *this, config_, records_.get(), kResendCapacity) {
  core_.set_observer(this);
}

VirtualSocket::~VirtualSocket() = default;

void VirtualSocket::start(std::chrono::milliseconds connect_delay) {
  core_.boot();
  after_core_call();
  transport_->start(connect_delay);
}

void VirtualSocket::stop() {
  transport_->stop();
}

void VirtualSocket::meter_period(uint32_t elapsed_ms) {
  if (!powered_) return;
  meter_.set_load({spec_.volts, hal_.relay() ? spec_.watts : 0.0, spec_.power_factor});
  const auto frame = meter_.next_frame(elapsed_ms);
  for (uint8_t b : frame) core_.on_meter_byte(b, false);
  core_.tick();
  after_core_call();
}

void VirtualSocket::button_click() {
  core_.button_click();
  after_core_call();
}

void VirtualSocket::on_connected() {
  emit(json{{"ev", "connected"}, {"cid", spec_.cid}}.dump());
  core_.on_transport_connected();
  after_core_call();
}

void VirtualSocket::on_disconnected(const std::string& reason) {
  emit(json{{"ev", "disconnected"}, {"cid", spec_.cid}, {"reason", reason}}.dump());
  core_.on_transport_disconnected();
  session_reported_ = false;
  held_results_.clear();  // results of that session's commands: the gateway forgot them
  after_core_call();
}

void VirtualSocket::on_bytes(const uint8_t* data, size_t len) {
  core_.on_transport_bytes(data, len);
  after_core_call();
}

bool VirtualSocket::send(const uint8_t* data, size_t len) {
  // LanClient hands over one whole frame per call: byte 2 is its type.
  if (commands_muted_ && len > 2 && data[2] == static_cast<uint8_t>(proto::MsgType::CommandResult)) {
    held_results_.emplace_back(data, data + len);
    emit(json{{"ev", "result_held"}, {"cid", spec_.cid}}.dump());
    return true;
  }
  return transport_->send(data, len);
}

void VirtualSocket::set_commands_muted(bool muted) {
  commands_muted_ = muted;
  emit(json{{"ev", "commands_muted"}, {"cid", spec_.cid}, {"muted", muted}, {"held", held_results_.size()}}
           .dump());
  if (muted) return;
  auto held = std::move(held_results_);
  held_results_.clear();
  for (const auto& frame : held) transport_->send(frame.data(), frame.size());
}

void VirtualSocket::on_relay_changed(bool on, proto::Cause cause) {
  // The core queues the event record just before telling its observer: its seq is the last one.
  emit(json{{"ev", "relay"},
            {"cid", spec_.cid},
            {"on", on},
            {"cause", proto::cause_name(cause)},
            {"boot", core_.boot_counter()},
            {"seq", core_.lan().next_seq() - 1}}
           .dump());
}

void VirtualSocket::on_command_handled(const proto::Command& cmd, proto::CommandStatus status) {
  emit(json{{"ev", "command"},
            {"cid", spec_.cid},
            {"cmd_id", cmd.cmd_id},
            {"kind", proto::command_kind_name(cmd.kind)},
            {"value", cmd.value},
            {"status", proto::command_status_name(status)}}
           .dump());
}

void VirtualSocket::on_over_current(uint32_t current_ma) {
  emit(json{{"ev", "over_current"}, {"cid", spec_.cid}, {"current_ma", current_ma}}.dump());
}

// Every protection trip (over-current also has its own "over_current" event, kept for compatibility);
// `type` is one of the protection events, named as the gateway stores them.
void VirtualSocket::on_trip(proto::EventType type, int32_t value) {
  emit(json{{"ev", "trip"},
            {"cid", spec_.cid},
            {"protection", proto::event_kind(type)},
            {"value", value},
            {"boot", core_.boot_counter()},
            {"seq", core_.lan().next_seq() - 1}}
           .dump());
}

void VirtualSocket::on_provisioning(bool active) {
  emit(json{{"ev", "provisioning"}, {"cid", spec_.cid}, {"active", active}}.dump());
}

void VirtualSocket::on_switch_locked(proto::Cause cause) {
  emit(json{{"ev", "switch_locked"}, {"cid", spec_.cid}, {"cause", proto::cause_name(cause)}}.dump());
}

void VirtualSocket::on_factory_reset() {
  emit(json{{"ev", "factory_reset"}, {"cid", spec_.cid}}.dump());
}

void VirtualSocket::after_core_call() {
  auto& lan = core_.lan();
  if (lan.session_up() && !session_reported_) {
    session_reported_ = true;
    transport_->mark_healthy();
    emit(json{{"ev", "session_up"}, {"cid", spec_.cid}, {"boot", core_.boot_counter()}}.dump());
  } else if (!lan.session_up()) {
    session_reported_ = false;
  }
  // The ack is cumulative: every record of this boot up to it is committed by the gateway.
  const uint32_t acked = lan.last_acked_seq();
  while (acked_seq_ < acked) {
    ++acked_seq_;
    emit(json{{"ev", "acked"}, {"cid", spec_.cid}, {"boot", core_.boot_counter()}, {"seq", acked_seq_}}
             .dump());
  }
  if (latency_ != nullptr) time_records(acked);
}

void VirtualSocket::time_records(uint32_t acked) {
  // Records are created inside core calls (tick() takes the reading), so "now" is their creation time.
  const auto now = std::chrono::steady_clock::now();
  if (core_.boot_counter() != timed_boot_) {  // a (cold) boot restarts the seqs
    timed_boot_ = core_.boot_counter();
    timed_seq_ = 0;
    created_.clear();
  }
  const uint32_t newest = core_.lan().next_seq() - 1;
  while (timed_seq_ < newest) {
    created_.emplace_back(++timed_seq_, now);
    if (created_.size() > kMaxTimedRecords) created_.pop_front();
  }
  while (!created_.empty() && created_.front().first <= acked) {
    latency_->add(now - created_.front().second);
    created_.pop_front();
  }
}

}  // namespace plugsim
