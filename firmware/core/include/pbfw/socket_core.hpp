// The smart socket's application logic, shared by the MCU firmware and plugsim: metering,
// readings, relay with protections (over-current/-power/-voltage, under-voltage), countdown,
// button, LED patterns, calibration, persistence and the LAN session.
// Single-threaded: the port calls every method from one context. No heap, no exceptions, no RTTI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <pbfw/energy.hpp>
#include <pbfw/hal.hpp>
#include <pbfw/hlw8032.hpp>
#include <pbfw/lan_client.hpp>
#include <pbfw/proto.hpp>

namespace pbfw {

struct LedColor {
  uint8_t r, g, b;
  friend bool operator==(const LedColor&, const LedColor&) = default;
};

struct SocketConfig {
  const char* cid;         // not copied: must outlive the core
  const char* fw_version;  // not copied: must outlive the core
  uint32_t kv_e6 = kDefaultKvE6, ki_e6 = kDefaultKiE6;
  uint32_t reading_interval_ms = 1000;
  // The first reading after boot comes this long after it; 0: 1 + fnv1a(cid) % reading_interval_ms,
  // so that sockets powered up together (after a power cut) do not report in step.
  uint32_t first_reading_ms = 0;
  // Defaults of the persisted settings (used until the gateway changes them, and after a factory reset).
  uint32_t current_limit_ma = 5000;
  uint32_t over_current_duration_ms = 0;          // limits must be exceeded this long (0 = first frame trips)
  uint32_t power_limit_w = 0;                     // 0 = off
  uint16_t voltage_max_v = 0, voltage_min_v = 0;  // 0 = off
  uint32_t meter_timeout_ms = 3000;               // no valid frame for this long -> readings "unavailable"
  MeterLimits meter{};                            // plausibility of a reading, held values, meter fault
  uint32_t persist_interval_ms = 60000;           // energy saved at most this often (flash wear)
  // Button (sampled in tick()): debounce, then click / hold-and-release / hold.
  uint32_t button_debounce_ms = 30;
  uint32_t provisioning_hold_ms = 5000;  // held at least this long, then released: provisioning
  uint32_t reset_hold_ms = 10000;        // held this long: factory reset (no release needed)
  uint32_t provisioning_timeout_ms = 180000;
  uint32_t reset_flash_ms = 3000;    // white flashing after a factory reset
  bool led_shows_connecting = true;  // blue flashing while the LAN session is down
  // False without a valid device-information page: the socket never joins, and the LED says so (flashing
  // purple) where it would otherwise flash "connecting" forever.
  bool provisioned = true;
};

// What the LED is doing; led_output() turns it into a colour at a given time.
enum class LedMode : uint8_t { Steady, Flashing, Breathing };
struct LedPattern {
  LedMode mode;
  LedColor color;  // full-brightness colour
  friend bool operator==(const LedPattern&, const LedPattern&) = default;
};

// Which protection tripped last (None = not tripped).
enum class Trip : uint8_t { None, OverCurrent, OverPower, OverVoltage, UnderVoltage };

// Optional notifications for the port (plugsim prints them); all default to no-ops.
class SocketObserver {
 public:
  virtual void on_relay_changed(bool /*on*/, proto::Cause /*cause*/) {}
  virtual void on_command_handled(const proto::Command& /*cmd*/, proto::CommandStatus /*status*/) {}
  virtual void on_over_current(uint32_t /*current_ma*/) {}
  // Any protection trip (over-current too); value as in the event (mA, W, mV).
  virtual void on_trip(proto::EventType /*type*/, int32_t /*value*/) {}
  virtual void on_provisioning(bool /*active*/) {}
  virtual void on_factory_reset() {}
  // A button click or gateway command did not switch because switching is disabled (DP 17).
  virtual void on_switch_locked(proto::Cause /*cause*/) {}

 protected:
  ~SocketObserver() = default;
};

// Not itself polymorphic: pbfw_core is built with -fno-rtti, and a polymorphic class whose vtable lives
// there breaks UBSan's vptr checks in RTTI-enabled callers (plugsim, tests). The LanClientListener is a
// private member that forwards here.
class SocketCore {
 public:
  // The command value ranges it enforces are the contract's (pbfw/limits.hpp).
  static constexpr uint32_t kFlashPeriodMs = 1000;  // flashing: half on, half off
  static constexpr uint32_t kBreathingPeriodMs = 3000;
  static constexpr uint8_t kBreathingMinLevel = 24;  // of 255: never fully dark while on
  static constexpr uint32_t kCapabilities = proto::kCapRelay | proto::kCapMeter | proto::kCapOverCurrent |
                                            proto::kCapCountdown | proto::kCapSwitchLock;
  static constexpr LedColor kLedStandby{0, 255, 0};           // steady green: relay off
  static constexpr LedColor kLedOverCurrent{255, 0, 0};       // flashing red: load cut by a protection
  static constexpr LedColor kLedConnecting{0, 0, 255};        // flashing blue: connecting / provisioning
  static constexpr LedColor kLedReset{255, 255, 255};         // flashing white: factory reset
  static constexpr LedColor kLedNotProvisioned{160, 0, 255};  // flashing purple: no identity, never joins
  // Relay on: breathing, colour by load power (spec's table).
  static constexpr LedColor kLedLow{0, 0, 255};       // < 300 W
  static constexpr LedColor kLedMedium{0, 255, 0};    // 300..500 W
  static constexpr LedColor kLedHigh{255, 255, 0};    // 500..800 W
  static constexpr LedColor kLedVeryHigh{255, 0, 0};  // >= 800 W

  // `records[0..capacity)` is the LAN resend buffer; everything passed must outlive the core.
  SocketCore(Hal& hal, Storage& storage, LanTransport& transport, const SocketConfig& cfg, Record* records,
             size_t capacity);
  SocketCore(const SocketCore&) = delete;
  SocketCore& operator=(const SocketCore&) = delete;

  // Loads the persistent state (boot_counter + 1, saved at once), restores relay and energy, and
  // starts the LAN client with the new boot counter. Call once, before anything else.
  void boot();
  void on_meter_byte(uint8_t b, bool err);  // from the HLW8032 UART (err = parity/framing error)
  void on_transport_connected();
  void on_transport_disconnected();
  void on_transport_bytes(const uint8_t* d, size_t n);
  void tick();  // call often (e.g. every 10-50 ms): readings, meter watchdog, persistence, LAN

  // Raw button level from the port (any rate); debounced and interpreted in tick().
  void button(bool pressed) { button_raw_ = pressed; }
  void button_click();  // toggles the relay (what a debounced short press does), unless switching is disabled
  // false = refused: switching is disabled and the cause is Button or Command (protections, countdown and
  // power-on are not switching requests and always act).
  bool set_relay(bool on, proto::Cause cause);
  // DP 17 switch_enabled, persisted: while false the button, SetRelay and new countdowns do not switch the
  // relay (protection trips still open it); disabling cancels a running countdown. A factory reset enables.
  void set_switch_enabled(bool enabled);
  bool switch_enabled() const { return state_.switch_disabled == 0; }
  // Hold-10-s action: energy to 0 (epoch + 1), settings and calibration back to the SocketConfig
  // defaults, switch count 0, relay off. Identity (cid, secret) is not ours; the boot counter is kept.
  void factory_reset();
  // Hold-5-s-release action; ends on timeout or provisioning_done() (the port got credentials).
  void start_provisioning();
  void provisioning_done();
  // Countdown (also by command): the relay flips when it runs out. 0 cancels. Any other relay change
  // (button, command, protection) cancels it too, so a countdown never re-energises a tripped load.
  // false: out of range, or a new countdown while switching is disabled.
  bool set_countdown(uint32_t seconds);
  // Calibration from a known load (Tasmota's VoltageSet/CurrentSet/PowerSet): false if the meter has
  // no fresh, non-overflowed register of that quantity or the result is out of range. Persisted. Uses
  // the last decoded frame even if it was not plausible (a wrong constant is what makes it so).
  bool calibrate_voltage(uint32_t true_mv);
  bool calibrate_current(uint32_t true_ma);
  bool calibrate_power(uint32_t true_mw);  // adjusts Ki, keeping Kv: calibrate the voltage first
  bool set_calibration(uint32_t kv_e6, uint32_t ki_e6);

  void set_observer(SocketObserver* observer) { observer_ = observer; }

  bool relay_on() const { return relay_on_; }
  bool over_current_tripped() const { return state_.tripped != 0; }  // any protection
  Trip last_trip() const { return last_trip_; }
  bool meter_ok() const { return meter_state_ == MeterState::Ok; }
  bool provisioning() const { return provisioning_; }
  bool button_pressed() const { return button_stable_; }  // debounced
  uint32_t countdown_remaining_s() const;
  uint32_t switch_count() const { return state_.switch_count; }
  uint32_t current_limit_ma() const { return state_.current_limit_ma; }
  uint32_t over_current_duration_ms() const { return state_.over_current_duration_ms; }
  uint32_t power_limit_w() const { return state_.power_limit_w; }
  uint16_t voltage_max_v() const { return state_.voltage_max_v; }
  uint16_t voltage_min_v() const { return state_.voltage_min_v; }
  uint32_t kv_e6() const { return meter_.kv_e6(); }
  uint32_t ki_e6() const { return meter_.ki_e6(); }
  uint32_t boot_counter() const { return state_.boot_counter; }
  LedColor led() const { return led_; }  // last colour written to the HAL
  LedPattern led_pattern() const;        // what the LED shows in the current state
  // The colour of a pattern at time t (flashing: on in the first half of each period; breathing:
  // smoothstep brightness ramp up and down, never below kBreathingMinLevel).
  static LedColor led_output(const LedPattern& p, uint64_t t);
  LanClient& lan() { return *lan_; }  // valid after boot()
  const LanClient& lan() const { return *lan_; }
  const Hlw8032Decoder& meter() const { return meter_; }
  const EnergyCounter& energy() const { return energy_; }
  // The reading that would be sent now.
  proto::Reading current_reading() const;

  // Called by the LAN client (public for tests): executes a gateway command and answers it.
  void on_command(const proto::Command& cmd);
  void on_session_down();

 private:
  enum class MeterState : uint8_t { Unknown, Ok, Lost };

  class Listener final : public LanClientListener {
   public:
    explicit Listener(SocketCore& core) : core_(core) {}
    void on_command(const proto::Command& cmd) override;
    void on_session_down() override;

   private:
    SocketCore& core_;
  };

  void on_frame(uint64_t now);
  void on_rejected_frame(uint64_t now);
  void meter_lost(uint64_t now, Hlw8032Reject reason);
  bool meter_fresh(uint64_t now) const;
  bool decoded_fresh(uint64_t now) const;
  proto::Reading reading_at(uint64_t now) const;
  struct TripInfo {
    Trip trip;
    proto::EventType event;
    int32_t value;
  };
  // A trip's event goes out before the RelayChanged one; the relay is cut before any bookkeeping.
  void apply_relay(bool on, proto::Cause cause, uint64_t now, const TripInfo* trip = nullptr);
  void check_protection(const MeterSample& s, uint64_t now);
  void sample_button(uint64_t now);
  void on_button_released(uint64_t held_ms);
  void stop_provisioning();
  void load_defaults();  // settings and calibration from cfg_
  void persist(uint64_t now);
  void send_reading(uint64_t now);
  void update_led();
  proto::CommandStatus execute(const proto::Command& cmd);
  void flush_results();

  Hal& hal_;
  Storage& storage_;
  LanTransport& transport_;
  SocketConfig cfg_;
  Record* records_;
  size_t capacity_;
  SocketObserver* observer_ = nullptr;
  Listener listener_{*this};
  std::optional<LanClient> lan_;  // built in boot(): its Hello carries the boot counter

  Hlw8032Decoder meter_;
  EnergyCounter energy_;
  PersistentState state_{};
  bool booted_ = false;
  bool relay_on_ = false;
  Trip last_trip_ = Trip::None;
  MeterState meter_state_ = MeterState::Unknown;
  // Protection: since when each limit has been exceeded (kNever = it is not).
  static constexpr uint64_t kNever = UINT64_MAX;
  uint64_t exceeded_since_[4] = {kNever, kNever, kNever, kNever};
  bool countdown_active_ = false;
  uint64_t countdown_end_ms_ = 0;
  bool button_raw_ = false;
  bool button_sampled_ = false;  // last raw level seen by tick()
  bool button_stable_ = false;   // debounced
  bool button_hold_fired_ = false;
  uint64_t button_edge_ms_ = 0;  // when the raw level last changed
  uint64_t button_down_ms_ = 0;  // when the debounced press started (its raw edge)
  bool provisioning_ = false;
  uint64_t provisioning_until_ms_ = 0;
  uint64_t reset_flash_until_ms_ = 0;
  bool reset_flashing_ = false;
  uint64_t boot_ms_ = 0;
  uint64_t last_frame_ms_ = 0;
  uint64_t last_decoded_ms_ = 0;  // last frame whose registers decoded (accepted or not plausible)
  bool decoded_any_ = false;
  uint64_t next_reading_ms_ = 0;
  uint64_t last_persist_ms_ = 0;
  LedColor led_{0, 0, 0};
  bool led_set_ = false;

  // Command results the transport refused; retried from tick(). Oldest dropped when full.
  static constexpr size_t kPendingResults = 4;
  proto::CommandResult pending_[kPendingResults] = {};
  size_t pending_count_ = 0;
};

}  // namespace pbfw
