#include <pbfw/fnv1a.hpp>
#include <pbfw/socket_core.hpp>

#include "wide_math.hpp"

namespace pbfw {

namespace {
constexpr uint32_t kLedMediumFromMw = 300'000;
constexpr uint32_t kLedHighFromMw = 500'000;
constexpr uint32_t kLedVeryHighFromMw = 800'000;

bool in_range(int32_t v, uint32_t lo, uint32_t hi) {
  return v >= 0 && static_cast<uint32_t>(v) >= lo && static_cast<uint32_t>(v) <= hi;
}
}  // namespace

SocketCore::SocketCore(Hal& hal, Storage& storage, LanTransport& transport, const SocketConfig& cfg,
                       Record* records, size_t capacity)
    : hal_(hal),
      storage_(storage),
      transport_(transport),
      cfg_(cfg),
      records_(records),
      capacity_(capacity),
      meter_(cfg.kv_e6, cfg.ki_e6, cfg.meter) {
  if (cfg_.reading_interval_ms == 0) cfg_.reading_interval_ms = 1;
  load_defaults();
}

void SocketCore::load_defaults() {
  state_.has_settings = 1;
  state_.current_limit_ma = cfg_.current_limit_ma;
  state_.over_current_duration_ms = cfg_.over_current_duration_ms;
  state_.power_limit_w = cfg_.power_limit_w;
  state_.voltage_max_v = cfg_.voltage_max_v;
  state_.voltage_min_v = cfg_.voltage_min_v;
  state_.kv_e6 = cfg_.kv_e6;
  state_.ki_e6 = cfg_.ki_e6;
  state_.switch_disabled = 0;
  meter_.set_calibration(state_.kv_e6, state_.ki_e6);
}

void SocketCore::boot() {
  if (booted_) return;
  booted_ = true;
  const uint64_t now = hal_.now_ms();
  boot_ms_ = now;

  PersistentState loaded{};
  if (!storage_.load(loaded)) loaded = PersistentState{};
  const PersistentState defaults = state_;
  state_ = loaded;
  ++state_.boot_counter;
  if (state_.boot_counter == 0) state_.boot_counter = 1;  // 0 is never a valid boot
  if (state_.has_settings == 0 || !proto::valid_calibration_e6(state_.kv_e6) ||
      !proto::valid_calibration_e6(state_.ki_e6)) {
    // Nothing stored yet (or an older storage format): the configured defaults.
    state_.has_settings = 1;
    state_.current_limit_ma = defaults.current_limit_ma;
    state_.over_current_duration_ms = defaults.over_current_duration_ms;
    state_.power_limit_w = defaults.power_limit_w;
    state_.voltage_max_v = defaults.voltage_max_v;
    state_.voltage_min_v = defaults.voltage_min_v;
    state_.kv_e6 = defaults.kv_e6;
    state_.ki_e6 = defaults.ki_e6;
  }
  meter_.set_calibration(state_.kv_e6, state_.ki_e6);
  energy_.restore(state_.energy_mwh, state_.energy_epoch);
  relay_on_ = state_.relay_on != 0;
  if (state_.tripped != 0) relay_on_ = false;  // a tripped load stays off across a power cut
  // Save before anything is sent: a second boot must never reuse this boot counter.
  persist(now);

  lan_.emplace(transport_, listener_, records_, capacity_,
               LanClientConfig{cfg_.cid, cfg_.fw_version, kCapabilities, state_.boot_counter});

  // Restore the relay as it was before the power cut and tell the gateway.
  hal_.set_relay(relay_on_);
  lan_->add_event(proto::EventType::RelayChanged, proto::Cause::PowerOn, relay_on_ ? 1 : 0, now);
  if (observer_ != nullptr) observer_->on_relay_changed(relay_on_, proto::Cause::PowerOn);
  // Sockets powered up together (after a power cut) would take their readings in step and reach
  // the gateway as one burst per interval: each takes its first at a point of the interval of its
  // own, from its cid.
  next_reading_ms_ = now + (cfg_.first_reading_ms != 0 ? cfg_.first_reading_ms
                                                       : 1 + fnv1a(cfg_.cid) % cfg_.reading_interval_ms);
  update_led();
}

void SocketCore::on_meter_byte(uint8_t b, bool err) {
  const uint32_t rejects = meter_.rejects_in_a_row();
  if (meter_.feed(b, err)) {
    if (booted_) on_frame(hal_.now_ms());
  } else if (meter_.rejects_in_a_row() != rejects && booted_) {
    on_rejected_frame(hal_.now_ms());
  }
}

// A frame with a good checksum that was not accepted (already counted by the decoder). A run of them
// is a faulty meter: readings become unavailable at once, with the reason, and only once per run.
void SocketCore::on_rejected_frame(uint64_t now) {
  if (meter_.last_reject() != Hlw8032Reject::Uncalibrated && meter_.last_reject() != Hlw8032Reject::Corrupt) {
    last_decoded_ms_ = now;
    decoded_any_ = true;
  }
  if (meter_.rejects_in_a_row() == cfg_.meter.fault_after_rejects) meter_lost(now, meter_.last_reject());
}

void SocketCore::meter_lost(uint64_t now, Hlw8032Reject reason) {
  if (meter_state_ == MeterState::Lost) return;
  meter_state_ = MeterState::Lost;
  lan_->add_event(proto::EventType::MeterLost, proto::Cause::Unknown, static_cast<int32_t>(reason), now);
}

void SocketCore::on_frame(uint64_t now) {
  last_frame_ms_ = last_decoded_ms_ = now;
  decoded_any_ = true;
  if (meter_state_ == MeterState::Lost) {
    lan_->add_event(proto::EventType::MeterRestored, proto::Cause::Unknown, 0, now);
  }
  meter_state_ = MeterState::Ok;
  const MeterSample& s = meter_.sample();
  // Protection first: the relay opens in this very call, before any bookkeeping.
  check_protection(s, now);
  energy_.on_frame(s.pf_count, s.pf_wrap_bit, s.power_param, meter_.kv_e6(), meter_.ki_e6());
  update_led();
}

void SocketCore::check_protection(const MeterSample& s, uint64_t now) {
  if (!relay_on_) {
    for (uint64_t& since : exceeded_since_) since = kNever;
    return;
  }
  // No mains (or no recent voltage measurement): the voltage limits have nothing to judge.
  const bool voltage_known = (s.valid & kMeterVoltage) != 0;
  const TripInfo checks[4] = {
      {Trip::OverCurrent, proto::EventType::OverCurrent, static_cast<int32_t>((s.current_ua + 500u) / 1000u)},
      {Trip::OverPower, proto::EventType::OverPower, static_cast<int32_t>((s.power_mw + 500u) / 1000u)},
      {Trip::OverVoltage, proto::EventType::OverVoltage, static_cast<int32_t>(s.voltage_mv)},
      {Trip::UnderVoltage, proto::EventType::UnderVoltage, static_cast<int32_t>(s.voltage_mv)},
  };
  const bool exceeded[4] = {
      uint64_t{s.current_ua} > uint64_t{state_.current_limit_ma} * 1000u,
      state_.power_limit_w != 0 && uint64_t{s.power_mw} > uint64_t{state_.power_limit_w} * 1000u,
      state_.voltage_max_v != 0 && voltage_known && s.voltage_mv > uint32_t{state_.voltage_max_v} * 1000u,
      state_.voltage_min_v != 0 && voltage_known && s.voltage_mv < uint32_t{state_.voltage_min_v} * 1000u,
  };
  for (size_t k = 0; k < 4; ++k) {
    if (!exceeded[k]) {
      exceeded_since_[k] = kNever;
      continue;
    }
    if (exceeded_since_[k] == kNever) exceeded_since_[k] = now;
    if (now - exceeded_since_[k] >= state_.over_current_duration_ms) {
      apply_relay(false, proto::Cause::Protection, now, &checks[k]);
      for (uint64_t& since : exceeded_since_) since = kNever;
      return;
    }
  }
}

bool SocketCore::meter_fresh(uint64_t now) const {
  return meter_state_ == MeterState::Ok && now - last_frame_ms_ < cfg_.meter_timeout_ms;
}

// Calibration reads the registers of the last decoded frame, plausible or not: with a wrong Kv or Ki
// every frame may be out of the plausible band, and calibrating is how that gets fixed.
bool SocketCore::decoded_fresh(uint64_t now) const {
  return decoded_any_ && now - last_decoded_ms_ < cfg_.meter_timeout_ms;
}

proto::Reading SocketCore::current_reading() const {
  return reading_at(hal_.now_ms());
}

uint32_t SocketCore::countdown_remaining_s() const {
  if (!countdown_active_) return 0;
  const uint64_t now = hal_.now_ms();
  if (now >= countdown_end_ms_) return 0;
  return static_cast<uint32_t>((countdown_end_ms_ - now + 999) / 1000);  // 0 only when it ran out
}

proto::Reading SocketCore::reading_at(uint64_t now) const {
  proto::Reading r{};
  r.flags = relay_on_ ? proto::kRelayOn : 0;
  if (state_.tripped != 0) r.flags |= proto::kTripped;
  if (state_.switch_disabled != 0) r.flags |= proto::kSwitchDisabled;
  if (meter_fresh(now)) {
    // Overflowed quantities are real near-zero measurements, so they are valid; a quantity the chip has
    // not refreshed lately (or since the relay switched) is not; no mains is a state, not 0 V.
    const MeterSample& s = meter_.sample();
    r.flags |= proto::kMeterOk;
    if ((s.valid & kMeterVoltage) != 0) r.flags |= proto::kVoltageValid;
    if ((s.valid & kMeterCurrent) != 0) r.flags |= proto::kCurrentValid;
    if ((s.valid & kMeterPower) != 0) r.flags |= proto::kPowerValid;
    if (s.no_mains) r.flags |= proto::kNoMains;
    r.voltage_mv = s.voltage_mv;
    r.current_ua = s.current_ua;
    r.power_mw = s.power_mw;
    r.apparent_mva = s.apparent_mva;
    r.power_factor_e4 = s.power_factor_e4;
  }
  // The energy counter is persisted state, not a live measurement: always reported.
  r.energy_mwh = energy_.energy_mwh();
  r.energy_epoch = energy_.epoch();
  if (countdown_active_ && countdown_end_ms_ > now) {
    r.countdown_s = static_cast<uint32_t>((countdown_end_ms_ - now + 999) / 1000);
  }
  r.switch_count = state_.switch_count;
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
  if (booted_) update_led();
}

void SocketCore::on_transport_bytes(const uint8_t* d, size_t n) {
  if (lan_) lan_->on_bytes(d, n, hal_.now_ms());
  if (booted_) update_led();  // the session may have come up
}

void SocketCore::tick() {
  if (!booted_) return;
  const uint64_t now = hal_.now_ms();
  lan_->tick(now);

  // Meter watchdog (also fires if no frame ever arrived since boot).
  const uint64_t last_seen = meter_state_ == MeterState::Unknown ? boot_ms_ : last_frame_ms_;
  if (meter_state_ != MeterState::Lost && now - last_seen >= cfg_.meter_timeout_ms) {
    meter_lost(now, Hlw8032Reject::None);  // silent, or only bad frames
  }

  sample_button(now);

  if (countdown_active_ && now >= countdown_end_ms_) {
    countdown_active_ = false;
    apply_relay(!relay_on_, proto::Cause::Countdown, now);
  }
  if (provisioning_ && now >= provisioning_until_ms_) stop_provisioning();
  if (reset_flashing_ && now >= reset_flash_until_ms_) reset_flashing_ = false;

  if (now >= next_reading_ms_) {
    send_reading(now);
    next_reading_ms_ += cfg_.reading_interval_ms;
    if (next_reading_ms_ <= now) next_reading_ms_ = now + cfg_.reading_interval_ms;  // no burst after a stall
  }

  const bool energy_changed =
      energy_.energy_mwh() != state_.energy_mwh || energy_.epoch() != state_.energy_epoch;
  if (energy_changed && now - last_persist_ms_ >= cfg_.persist_interval_ms) persist(now);

  flush_results();
  update_led();
}

void SocketCore::sample_button(uint64_t now) {
  if (button_raw_ != button_sampled_) {
    button_sampled_ = button_raw_;
    button_edge_ms_ = now;
  }
  if (button_sampled_ != button_stable_ && now - button_edge_ms_ >= cfg_.button_debounce_ms) {
    button_stable_ = button_sampled_;
    if (button_stable_) {
      button_down_ms_ = button_edge_ms_;
      button_hold_fired_ = false;
    } else {
      on_button_released(button_edge_ms_ - button_down_ms_);
    }
  }
  if (button_stable_ && !button_hold_fired_ && now - button_down_ms_ >= cfg_.reset_hold_ms) {
    button_hold_fired_ = true;  // the release that follows does nothing more
    factory_reset();
  }
}

void SocketCore::on_button_released(uint64_t held_ms) {
  if (button_hold_fired_) return;
  if (held_ms >= cfg_.provisioning_hold_ms) {
    start_provisioning();
  } else {
    button_click();
  }
}

void SocketCore::start_provisioning() {
  if (!booted_) return;
  provisioning_ = true;
  provisioning_until_ms_ = hal_.now_ms() + cfg_.provisioning_timeout_ms;
  hal_.start_provisioning();
  if (observer_ != nullptr) observer_->on_provisioning(true);
  update_led();
}

void SocketCore::provisioning_done() {
  if (provisioning_) stop_provisioning();
}

void SocketCore::stop_provisioning() {
  provisioning_ = false;
  hal_.stop_provisioning();
  if (observer_ != nullptr) observer_->on_provisioning(false);
  update_led();
}

bool SocketCore::set_countdown(uint32_t seconds) {
  if (!booted_ || seconds > proto::kMaxCountdownS) return false;
  if (seconds != 0 && state_.switch_disabled != 0) return false;  // cancelling stays allowed
  countdown_active_ = seconds != 0;
  countdown_end_ms_ = hal_.now_ms() + uint64_t{seconds} * 1000u;
  return true;
}

void SocketCore::button_click() {
  set_relay(!relay_on_, proto::Cause::Button);
}

bool SocketCore::set_relay(bool on, proto::Cause cause) {
  if (!booted_) return false;
  if (state_.switch_disabled != 0 && (cause == proto::Cause::Button || cause == proto::Cause::Command)) {
    if (observer_ != nullptr) observer_->on_switch_locked(cause);
    return false;
  }
  if (on != relay_on_) apply_relay(on, cause, hal_.now_ms());
  return true;
}

void SocketCore::set_switch_enabled(bool enabled) {
  if (!booted_) return;
  const uint8_t disabled = enabled ? 0 : 1;
  if (!enabled) countdown_active_ = false;  // a countdown is a scheduled switching
  if (state_.switch_disabled == disabled) return;
  state_.switch_disabled = disabled;
  persist(hal_.now_ms());
}

void SocketCore::apply_relay(bool on, proto::Cause cause, uint64_t now, const TripInfo* trip) {
  relay_on_ = on;
  hal_.set_relay(on);  // first: protection must cut the load before any bookkeeping
  ++state_.switch_count;
  // What the meter held of the load before the switch is no measurement of it now.
  meter_.forget(kMeterCurrent | kMeterPower);
  if (cause != proto::Cause::Countdown) countdown_active_ = false;
  if (trip != nullptr) {
    state_.tripped = 1;
    last_trip_ = trip->trip;
    lan_->add_event(trip->event, proto::Cause::Protection, trip->value, now);
    if (observer_ != nullptr) {
      if (trip->trip == Trip::OverCurrent) observer_->on_over_current(static_cast<uint32_t>(trip->value));
      observer_->on_trip(trip->event, trip->value);
    }
  } else if (on) {
    state_.tripped = 0;  // switched on again: back to normal
  }
  lan_->add_event(proto::EventType::RelayChanged, cause, on ? 1 : 0, now);
  if (observer_ != nullptr) observer_->on_relay_changed(on, cause);
  persist(now);
  update_led();
}

void SocketCore::factory_reset() {
  if (!booted_) return;
  const uint64_t now = hal_.now_ms();
  if (relay_on_) apply_relay(false, proto::Cause::Button, now);
  energy_.factory_reset();
  load_defaults();
  state_.switch_count = 0;
  state_.tripped = 0;
  last_trip_ = Trip::None;
  countdown_active_ = false;
  if (provisioning_) stop_provisioning();
  reset_flashing_ = true;
  reset_flash_until_ms_ = now + cfg_.reset_flash_ms;
  persist(now);
  lan_->add_event(proto::EventType::FactoryReset, proto::Cause::Button, energy_.epoch(), now);
  if (observer_ != nullptr) observer_->on_factory_reset();
  update_led();
}

void SocketCore::persist(uint64_t now) {
  state_.energy_mwh = energy_.energy_mwh();
  state_.energy_epoch = energy_.epoch();
  state_.relay_on = relay_on_ ? 1 : 0;
  storage_.save(state_);
  last_persist_ms_ = now;
}

LedPattern SocketCore::led_pattern() const {
  if (reset_flashing_) return {LedMode::Flashing, kLedReset};
  // Held past the provisioning threshold: steady blue tells the user that releasing now starts Wi-Fi
  // provisioning (holding on to 10 s resets, flashing white).
  if (button_stable_ && !button_hold_fired_ && hal_.now_ms() - button_down_ms_ >= cfg_.provisioning_hold_ms)
    return {LedMode::Steady, kLedConnecting};
  if (provisioning_) return {LedMode::Flashing, kLedConnecting};
  if (state_.tripped != 0 && !relay_on_) return {LedMode::Flashing, kLedOverCurrent};
  if (!cfg_.provisioned) return {LedMode::Flashing, kLedNotProvisioned};
  if (cfg_.led_shows_connecting && lan_ && !lan_->session_up()) return {LedMode::Flashing, kLedConnecting};
  if (!relay_on_) return {LedMode::Steady, kLedStandby};
  const uint32_t mw = meter_fresh(hal_.now_ms()) ? meter_.sample().power_mw : 0;
  const LedColor c = mw >= kLedVeryHighFromMw ? kLedVeryHigh
                     : mw >= kLedHighFromMw   ? kLedHigh
                     : mw >= kLedMediumFromMw ? kLedMedium
                                              : kLedLow;
  return {LedMode::Breathing, c};
}

LedColor SocketCore::led_output(const LedPattern& p, uint64_t t) {
  switch (p.mode) {
    case LedMode::Steady:
      return p.color;
    case LedMode::Flashing:
      return t % kFlashPeriodMs < kFlashPeriodMs / 2 ? p.color : LedColor{0, 0, 0};
    case LedMode::Breathing: {
      // Triangle 0..1024..0 over the period, through smoothstep (3x^2 - 2x^3): no kinks at the ends.
      constexpr uint32_t kHalf = kBreathingPeriodMs / 2;
      const auto phase = static_cast<uint32_t>(t % kBreathingPeriodMs);
      const uint32_t x = (phase < kHalf ? phase : kBreathingPeriodMs - phase) * 1024u / kHalf;
      const uint32_t smooth = x * x / 1024u * (3u * 1024u - 2u * x) / 1024u;  // 0..1024
      const uint32_t level = kBreathingMinLevel + (255u - kBreathingMinLevel) * smooth / 1024u;
      auto scale = [level](uint8_t c) { return static_cast<uint8_t>(c * level / 255u); };
      return {scale(p.color.r), scale(p.color.g), scale(p.color.b)};
    }
  }
  return p.color;
}

void SocketCore::update_led() {
  const LedColor c = led_output(led_pattern(), hal_.now_ms());
  if (led_set_ && c == led_) return;
  led_ = c;
  led_set_ = true;
  hal_.set_led(c.r, c.g, c.b);
}

bool SocketCore::set_calibration(uint32_t kv_e6, uint32_t ki_e6) {
  if (!booted_ || !proto::valid_calibration_e6(kv_e6) || !proto::valid_calibration_e6(ki_e6)) return false;
  state_.kv_e6 = kv_e6;
  state_.ki_e6 = ki_e6;
  meter_.set_calibration(kv_e6, ki_e6);
  persist(hal_.now_ms());
  return true;
}

// V = Vp / Vreg x Kv  =>  Kv = V x Vreg / Vp.
bool SocketCore::calibrate_voltage(uint32_t true_mv) {
  const MeterSample& s = meter_.decoded();
  if (!decoded_fresh(hal_.now_ms()) || true_mv == 0 || s.voltage_reg == 0 || s.voltage_param == 0)
    return false;
  const uint64_t kv = (uint64_t{true_mv} * 1000u * s.voltage_reg + s.voltage_param / 2) / s.voltage_param;
  return proto::valid_calibration_e6(kv) && set_calibration(static_cast<uint32_t>(kv), state_.ki_e6);
}

// I = Ip / Ireg x Ki  =>  Ki = I x Ireg / Ip.
bool SocketCore::calibrate_current(uint32_t true_ma) {
  const MeterSample& s = meter_.decoded();
  if (!decoded_fresh(hal_.now_ms()) || true_ma == 0 || s.current_reg == 0 || s.current_param == 0)
    return false;
  const uint64_t ki = (uint64_t{true_ma} * 1000u * s.current_reg + s.current_param / 2) / s.current_param;
  return proto::valid_calibration_e6(ki) && set_calibration(state_.kv_e6, static_cast<uint32_t>(ki));
}

// P = Pp / Preg x Kv x Ki  =>  Ki = P x Preg / (Pp x Kv); in x1e6 units: mW x Preg x 1e9 / (Pp x kv_e6).
bool SocketCore::calibrate_power(uint32_t true_mw) {
  const MeterSample& s = meter_.decoded();
  if (!decoded_fresh(hal_.now_ms()) || true_mw == 0 || s.power_reg == 0 || s.power_param == 0) return false;
  const detail::U128 ki = detail::div_round(detail::mul(detail::mul64(true_mw, s.power_reg), 1'000'000'000u),
                                            detail::mul64(s.power_param, state_.kv_e6));
  if (!ki.fits_u64() || !proto::valid_calibration_e6(ki.lo)) return false;
  return set_calibration(state_.kv_e6, static_cast<uint32_t>(ki.lo));
}

proto::CommandStatus SocketCore::execute(const proto::Command& cmd) {
  using proto::CommandKind;
  using proto::CommandStatus;
  const int32_t v = cmd.value;
  const uint64_t now = hal_.now_ms();
  // Setting changes persist at once: they are rare and must survive a power cut.
  auto set_setting = [&](bool ok, auto apply) {
    if (!ok) return CommandStatus::InvalidValue;
    apply(static_cast<uint32_t>(v));
    persist(now);
    return CommandStatus::Ok;
  };
  switch (cmd.kind) {
    case CommandKind::SetRelay:
      if (v != 0 && v != 1) return CommandStatus::InvalidValue;
      return set_relay(v == 1, proto::Cause::Command) ? CommandStatus::Ok : CommandStatus::Refused;
    case CommandKind::SetCurrentLimit:
      return set_setting(in_range(v, proto::kMinCurrentLimitMa, proto::kMaxCurrentLimitMa),
                         [&](uint32_t x) { state_.current_limit_ma = x; });
    case CommandKind::RequestReading:
      send_reading(now);
      return CommandStatus::Ok;
    case CommandKind::SetCountdown:
      if (!in_range(v, 0, proto::kMaxCountdownS)) return CommandStatus::InvalidValue;
      if (!set_countdown(static_cast<uint32_t>(v))) return CommandStatus::Refused;  // switching disabled
      send_reading(now);  // the gateway sees the new remaining time at once
      return CommandStatus::Ok;
    case CommandKind::SetOverCurrentDuration:
      return set_setting(in_range(v, 0, proto::kMaxOverCurrentDurationMs),
                         [&](uint32_t x) { state_.over_current_duration_ms = x; });
    case CommandKind::SetPowerLimit:
      return set_setting(in_range(v, 0, proto::kMaxPowerLimitW),
                         [&](uint32_t x) { state_.power_limit_w = x; });
    case CommandKind::SetVoltageMax:
      return set_setting(in_range(v, 0, proto::kMaxVoltageLimitV),
                         [&](uint32_t x) { state_.voltage_max_v = static_cast<uint16_t>(x); });
    case CommandKind::SetVoltageMin:
      return set_setting(in_range(v, 0, proto::kMaxVoltageLimitV),
                         [&](uint32_t x) { state_.voltage_min_v = static_cast<uint16_t>(x); });
    case CommandKind::SetKv:
      return v >= 0 && set_calibration(static_cast<uint32_t>(v), state_.ki_e6) ? CommandStatus::Ok
                                                                               : CommandStatus::InvalidValue;
    case CommandKind::SetKi:
      return v >= 0 && set_calibration(state_.kv_e6, static_cast<uint32_t>(v)) ? CommandStatus::Ok
                                                                               : CommandStatus::InvalidValue;
    case CommandKind::CalibrateVoltage:
      if (v <= 0) return CommandStatus::InvalidValue;
      return calibrate_voltage(static_cast<uint32_t>(v)) ? CommandStatus::Ok : CommandStatus::Refused;
    case CommandKind::CalibrateCurrent:
      if (v <= 0) return CommandStatus::InvalidValue;
      return calibrate_current(static_cast<uint32_t>(v)) ? CommandStatus::Ok : CommandStatus::Refused;
    case CommandKind::CalibratePower:
      if (v <= 0) return CommandStatus::InvalidValue;
      return calibrate_power(static_cast<uint32_t>(v)) ? CommandStatus::Ok : CommandStatus::Refused;
    case CommandKind::SetSwitchEnabled:
      if (v != 0 && v != 1) return CommandStatus::InvalidValue;
      set_switch_enabled(v == 1);
      send_reading(now);  // the gateway sees the new kSwitchDisabled flag (and cancelled countdown) at once
      return CommandStatus::Ok;
  }
  return CommandStatus::Unsupported;
}

void SocketCore::on_command(const proto::Command& cmd) {
  const proto::CommandStatus status = execute(cmd);
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
