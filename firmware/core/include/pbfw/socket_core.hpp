// The smart socket's application logic, shared by the MCU firmware and plugsim: metering,
// readings, relay with over-current protection, LED, persistence and the LAN session.
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

struct SocketConfig {
  const char* cid;         // not copied: must outlive the core
  const char* fw_version;  // not copied: must outlive the core
  uint32_t kv_e6 = kDefaultKvE6, ki_e6 = kDefaultKiE6;
  uint32_t reading_interval_ms = 1000;
  uint32_t current_limit_ma = 5000;
  uint32_t meter_timeout_ms = 3000;      // no valid frame for this long -> readings "unavailable"
  uint32_t persist_interval_ms = 60000;  // energy saved at most this often (flash wear)
};

// Optional notifications for the port (plugsim prints them); all default to no-ops.
class SocketObserver {
 public:
  virtual void on_relay_changed(bool /*on*/, proto::Cause /*cause*/) {}
  virtual void on_command_handled(const proto::Command& /*cmd*/, proto::CommandStatus /*status*/) {}
  virtual void on_over_current(uint32_t /*current_ma*/) {}

 protected:
  ~SocketObserver() = default;
};

struct LedColor {
  uint8_t r, g, b;
  friend bool operator==(const LedColor&, const LedColor&) = default;
};

// Not itself polymorphic: pbfw_core is built with -fno-rtti, and a polymorphic class whose vtable lives
// there breaks UBSan's vptr checks in RTTI-enabled callers (plugsim, tests). The LanClientListener is a
// private member that forwards here.
class SocketCore {
 public:
  static constexpr uint32_t kMinCurrentLimitMa = 100;
  static constexpr uint32_t kMaxCurrentLimitMa = 20000;
  static constexpr uint32_t kCapabilities = proto::kCapRelay | proto::kCapMeter | proto::kCapOverCurrent;
  static constexpr LedColor kLedStandby{0, 255, 0};      // steady green: relay off
  static constexpr LedColor kLedOverCurrent{255, 0, 0};  // red: load cut by protection
  // Relay on, by load power (spec's breathing table; breathing itself is not done yet).
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

  void button_click();  // toggles the relay
  void set_relay(bool on, proto::Cause cause);
  // Hold-10-s action: energy to 0 (epoch + 1), relay off. The boot counter is kept: it scopes seqs.
  void factory_reset();

  void set_observer(SocketObserver* observer) { observer_ = observer; }

  bool relay_on() const { return relay_on_; }
  bool over_current_tripped() const { return tripped_; }
  bool meter_ok() const { return meter_state_ == MeterState::Ok; }
  uint32_t current_limit_ma() const { return current_limit_ma_; }
  uint32_t boot_counter() const { return state_.boot_counter; }
  LedColor led() const { return led_; }
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
  bool meter_fresh(uint64_t now) const;
  proto::Reading reading_at(uint64_t now) const;
  // trip_ma >= 0: over-current trip with that current (OverCurrent event before RelayChanged).
  void apply_relay(bool on, proto::Cause cause, uint64_t now, int32_t trip_ma = -1);
  void persist(uint64_t now);
  void send_reading(uint64_t now);
  void update_led();
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
  bool tripped_ = false;
  uint32_t current_limit_ma_;
  MeterState meter_state_ = MeterState::Unknown;
  uint64_t boot_ms_ = 0;
  uint64_t last_frame_ms_ = 0;
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
