#include <pbfw/socket_core.hpp>

namespace pbfw {

namespace {
constexpr uint32_t kLedMediumFromMw = 300'000;
constexpr uint32_t kLedHighFromMw = 500'000;
constexpr uint32_t kLedVeryHighFromMw = 800'000;
}  // namespace

SocketCore::SocketCore(Hal& hal, Storage& storage, LanTransport& transport, const SocketConfig& cfg,
                       Record* records, size_t capacity)
    : hal_(hal),
      storage_(storage),
      transport_(transport),
      cfg_(cfg),
      records_(records),
      capacity_(capacity),
      meter_(cfg.kv_e6, cfg.ki_e6),
      current_limit_ma_(cfg.current_limit_ma) {
  if (cfg_.reading_interval_ms == 0) cfg_.reading_interval_ms = 1;
}

void SocketCore::boot() {
  if (booted_) return;
  booted_ = true;
  const uint64_t now = hal_.now_ms();
  boot_ms_ = now;

  PersistentState loaded{};
  if (!storage_.load(loaded)) loaded = PersistentState{};
  state_ = loaded;
  ++state_.boot_counter;
  if (state_.boot_counter == 0) state_.boot_counter = 1;  // 0 is never a valid boot
  energy_.restore(state_.energy_mwh, state_.energy_epoch);
  relay_on_ = state_.relay_on != 0;
  // Save before anything is sent: a second boot must never reuse this boot counter.
  persist(now);

  lan_.emplace(transport_, listener_, records_, capacity_,
               LanClientConfig{cfg_.cid, cfg_.fw_version, kCapabilities, state_.boot_counter});

  // Restore the relay as it was before the power cut and tell the gateway.
  hal_.set_relay(relay_on_);
  lan_->add_event(proto::EventType::RelayChanged, proto::Cause::PowerOn, relay_on_ ? 1 : 0, now);
  if (observer_ != nullptr) observer_->on_relay_changed(relay_on_, proto::Cause::PowerOn);
  next_reading_ms_ = now + cfg_.reading_interval_ms;
  update_led();
}

void SocketCore::on_meter_byte(uint8_t b, bool err) {
  if (meter_.feed(b, err) && booted_) on_frame(hal_.now_ms());
}

void SocketCore::on_frame(uint64_t now) {
  last_frame_ms_ = now;
  if (meter_state_ == MeterState::Lost) {
    lan_->add_event(proto::EventType::MeterRestored, proto::Cause::Unknown, 0, now);
  }
  meter_state_ = MeterState::Ok;
  const MeterSample& s = meter_.sample();
  energy_.on_frame(s.pf_count, s.pf_wrap_bit, s.power_param, meter_.kv_e6(), meter_.ki_e6());

  if (relay_on_ && uint64_t{s.current_ua} > uint64_t{current_limit_ma_} * 1000u) {
    apply_relay(false, proto::Cause::Protection, now, static_cast<int32_t>((s.current_ua + 500u) / 1000u));
  }
  update_led();
}

bool SocketCore::meter_fresh(uint64_t now) const {
  return meter_state_ == MeterState::Ok && now - last_frame_ms_ < cfg_.meter_timeout_ms;
}

proto::Reading SocketCore::current_reading() const {
  return reading_at(hal_.now_ms());
}

proto::Reading SocketCore::reading_at(uint64_t now) const {
  proto::Reading r{};
  r.flags = relay_on_ ? proto::kRelayOn : 0;
  if (meter_fresh(now)) {
    // Overflowed quantities are real near-zero measurements, so they stay flagged valid.
    r.flags |= proto::kMeterOk | proto::kVoltageValid | proto::kCurrentValid | proto::kPowerValid;
    const MeterSample& s = meter_.sample();
    r.voltage_mv = s.voltage_mv;
    r.current_ua = s.current_ua;
    r.power_mw = s.power_mw;
    r.apparent_mva = s.apparent_mva;
    r.power_factor_e4 = s.power_factor_e4;
  }
  // The energy counter is persisted state, not a live measurement: always reported.
  r.energy_mwh = energy_.energy_mwh();
  r.energy_epoch = energy_.epoch();
  return r;
}

void SocketCore::send_reading(uint64_t now) {
  lan_->add_reading(reading_at(now), now);
}

void SocketCore::on_transport_connected() {
  if (lan_) lan_->on_connected(hal_.now_ms());
}

void SocketCore::on_transport_disconnected() {
  if (lan_) lan_->on_disconnected();
}

void SocketCore::on_transport_bytes(const uint8_t* d, size_t n) {
  if (lan_) lan_->on_bytes(d, n, hal_.now_ms());
}

void SocketCore::tick() {
  if (!booted_) return;
  const uint64_t now = hal_.now_ms();
  lan_->tick(now);

  // Meter watchdog (also fires if no frame ever arrived since boot).
  const uint64_t last_seen = meter_state_ == MeterState::Unknown ? boot_ms_ : last_frame_ms_;
  if (meter_state_ != MeterState::Lost && now - last_seen >= cfg_.meter_timeout_ms) {
    meter_state_ = MeterState::Lost;
    lan_->add_event(proto::EventType::MeterLost, proto::Cause::Unknown, 0, now);
    update_led();
  }

  if (now >= next_reading_ms_) {
    send_reading(now);
    next_reading_ms_ += cfg_.reading_interval_ms;
    if (next_reading_ms_ <= now) next_reading_ms_ = now + cfg_.reading_interval_ms;  // no burst after a stall
  }

  const bool energy_changed =
      energy_.energy_mwh() != state_.energy_mwh || energy_.epoch() != state_.energy_epoch;
  if (energy_changed && now - last_persist_ms_ >= cfg_.persist_interval_ms) persist(now);

  flush_results();
}

void SocketCore::button_click() {
  set_relay(!relay_on_, proto::Cause::Button);
}

void SocketCore::set_relay(bool on, proto::Cause cause) {
  if (!booted_ || on == relay_on_) return;
  apply_relay(on, cause, hal_.now_ms());
}

void SocketCore::apply_relay(bool on, proto::Cause cause, uint64_t now, int32_t trip_ma) {
  relay_on_ = on;
  hal_.set_relay(on);  // first: protection must cut the load before any bookkeeping
  if (trip_ma >= 0) {
    tripped_ = true;
    lan_->add_event(proto::EventType::OverCurrent, proto::Cause::Protection, trip_ma, now);
    if (observer_ != nullptr) observer_->on_over_current(static_cast<uint32_t>(trip_ma));
  } else if (on) {
    tripped_ = false;  // switched on again: back to normal
  }
  lan_->add_event(proto::EventType::RelayChanged, cause, on ? 1 : 0, now);
  if (observer_ != nullptr) observer_->on_relay_changed(on, cause);
  persist(now);
  update_led();
}

void SocketCore::factory_reset() {
  if (!booted_) return;
  const uint64_t now = hal_.now_ms();
  energy_.factory_reset();
  tripped_ = false;
  if (relay_on_) {
    apply_relay(false, proto::Cause::Button, now);  // persists too
  } else {
    persist(now);
    update_led();
  }
}

void SocketCore::persist(uint64_t now) {
  state_.energy_mwh = energy_.energy_mwh();
  state_.energy_epoch = energy_.epoch();
  state_.relay_on = relay_on_ ? 1 : 0;
  storage_.save(state_);
  last_persist_ms_ = now;
}

void SocketCore::update_led() {
  LedColor c = kLedStandby;
  if (relay_on_) {
    const uint32_t mw = meter_fresh(hal_.now_ms()) ? meter_.sample().power_mw : 0;
    c = mw >= kLedVeryHighFromMw ? kLedVeryHigh
        : mw >= kLedHighFromMw   ? kLedHigh
        : mw >= kLedMediumFromMw ? kLedMedium
                                 : kLedLow;
  } else if (tripped_) {
    c = kLedOverCurrent;
  }
  if (led_set_ && c == led_) return;
  led_ = c;
  led_set_ = true;
  hal_.set_led(c.r, c.g, c.b);
}

void SocketCore::on_command(const proto::Command& cmd) {
  proto::CommandStatus status = proto::CommandStatus::Ok;
  switch (cmd.kind) {
    case proto::CommandKind::SetRelay:
      if (cmd.value == 0 || cmd.value == 1) {
        set_relay(cmd.value == 1, proto::Cause::Command);
      } else {
        status = proto::CommandStatus::InvalidValue;
      }
      break;
    case proto::CommandKind::SetCurrentLimit:
      if (cmd.value >= static_cast<int32_t>(kMinCurrentLimitMa) &&
          cmd.value <= static_cast<int32_t>(kMaxCurrentLimitMa)) {
        current_limit_ma_ = static_cast<uint32_t>(cmd.value);
      } else {
        status = proto::CommandStatus::InvalidValue;
      }
      break;
    case proto::CommandKind::RequestReading:
      send_reading(hal_.now_ms());
      break;
    default:
      status = proto::CommandStatus::Unsupported;
      break;
  }
  if (observer_ != nullptr) observer_->on_command_handled(cmd, status);
  const proto::CommandResult result{cmd.cmd_id, status, static_cast<uint8_t>(relay_on_ ? 1 : 0)};
  if (pending_count_ == 0 && lan_->send_command_result(result)) return;
  if (pending_count_ == kPendingResults) {  // keep the newest
    for (size_t k = 1; k < pending_count_; ++k) pending_[k - 1] = pending_[k];
    --pending_count_;
  }
  pending_[pending_count_++] = result;
}

// Results of commands from a session that went down are dropped: the gateway forgot those commands.
void SocketCore::on_session_down() {
  pending_count_ = 0;
}

void SocketCore::Listener::on_command(const proto::Command& cmd) {
  core_.on_command(cmd);
}
void SocketCore::Listener::on_session_down() {
  core_.on_session_down();
}

void SocketCore::flush_results() {
  size_t sent = 0;
  while (sent < pending_count_ && lan_->session_up() && lan_->send_command_result(pending_[sent])) ++sent;
  if (sent == 0) return;
  for (size_t k = sent; k < pending_count_; ++k) pending_[k - sent] = pending_[k];
  pending_count_ -= sent;
}

}  // namespace pbfw
