// Streaming decoder for the HLW8032 / CSE7766 energy-metering UART frames (24 bytes, 4800 8E1).
// Integer-only: calibration constants are fixed point (x 1e6). No heap, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/limits.hpp>

namespace pbfw {

using proto::kDefaultKiE6;  // the reference board's constants (wire contract)
using proto::kDefaultKvE6;

// The quantities the chip measures, as bits (MeterSample::refreshed / valid, Hlw8032Decoder::forget).
enum MeterQuantity : uint8_t {
  kMeterVoltage = 1u << 0,
  kMeterCurrent = 1u << 1,
  kMeterPower = 1u << 2,
};
inline constexpr uint8_t kMeterAll = kMeterVoltage | kMeterCurrent | kMeterPower;

// Physical plausibility of a reading, and how long a value the chip did not refresh is kept. The socket's
// defaults live here (SocketConfig::meter); the bounds hold whatever the calibration says.
struct MeterLimits {
  // Mains voltage: a reading must lie within nominal +- band. Below no_mains_below_mv (or with the
  // voltage overflow bit) there is no mains at all: a state, not a voltage reading.
  uint32_t nominal_voltage_mv = 230'000;
  uint32_t voltage_band_pct = 30;  // 161..299 V: every settable over-voltage limit (<= 300 V) still trips
  uint32_t no_mains_below_mv = 50'000;
  // Current: at most the socket's rating plus margin. The default ceiling (5 A x 4 = 20 A) is the highest
  // settable current limit, so a real overload is still a reading and trips the protection.
  uint32_t rated_current_ma = 5'000;
  uint32_t current_margin_pct = 300;
  // Active power: P <= V x I x (100 + tolerance) / 100 + margin, i.e. PF within [0, 1] up to the chip's
  // error (Kv and Ki cancel in P / S, so calibration does not matter). The margin covers tiny loads.
  uint32_t power_tolerance_pct = 10;
  uint32_t power_margin_mw = 2'000;
  // A quantity whose data-update bit is clear keeps its last value for at most this many accepted frames
  // (~50 ms each); after that it has no value until the chip refreshes it or reports it below threshold.
  uint32_t hold_frames = 60;
  // This many rejected frames in a row: the meter is faulty (the socket raises one event per run).
  uint32_t fault_after_rejects = 10;
};

// One decoded frame. A quantity is valid when the chip refreshed it in this frame (data-update bit),
// reported it below its threshold (overflow bit: the value is 0), or it is held from a recent frame.
// Invalid quantities, and the voltage when there is no mains, read 0 and have their register 0.
struct MeterSample {
  uint8_t state = 0;  // state register (0x55 or 0xF0..0xFE with bit 0 clear)
  bool voltage_overflow = false;
  bool current_overflow = false;
  bool power_overflow = false;
  bool no_mains = false;  // voltage overflow or below MeterLimits::no_mains_below_mv: voltage not valid
  uint8_t refreshed = 0;  // MeterQuantity bits measured by this frame (update bit or overflow)
  uint8_t valid = 0;      // MeterQuantity bits with a value (refreshed or held)
  uint32_t voltage_mv = 0;
  uint32_t current_ua = 0;
  uint32_t power_mw = 0;         // active power
  uint32_t apparent_mva = 0;     // V x I; 0 unless both are valid
  uint16_t power_factor_e4 = 0;  // P / S x 10000, clamped to 10000; 0 when S or P is 0
  uint32_t power_param = 0;      // Pp, needed for energy per PF pulse
  // Raw registers, for calibration from a known load (period registers are 0 when overflowed).
  uint32_t voltage_param = 0, voltage_reg = 0;
  uint32_t current_param = 0, current_reg = 0;
  uint32_t power_reg = 0;
  uint16_t pf_count = 0;     // free-running PF pulse counter
  bool pf_wrap_bit = false;  // data-update register bit 7: toggles at each PF counter wrap
  uint8_t data_update = 0;   // raw data-update register
};

// Why a frame with a good checksum was not accepted. The numbers are part of the wire contract: the
// MeterLost event carries the reason of a run of rejected frames (docs/lan-protocol.md).
enum class Hlw8032Reject : uint8_t {
  None = 0,
  Uncalibrated = 1,  // state 0xAA, state bit 0 (coefficient storage abnormal) or a zero parameter register
  Corrupt = 2,       // unknown state bits, or a zero period register the chip says it refreshed
  VoltageOutOfBand = 3,   // mains voltage outside nominal +- band (and not "no mains")
  CurrentOverRating = 4,  // current above the rating plus margin
  PowerOverApparent = 5,  // P > V x I beyond tolerance: PF outside [0, 1]
};
inline constexpr Hlw8032Reject kLastHlw8032Reject = Hlw8032Reject::PowerOverApparent;
const char* to_string(Hlw8032Reject r);

struct Hlw8032Stats {
  uint32_t frames = 0;  // accepted
  uint32_t checksum_errors = 0;
  uint32_t byte_errors = 0;      // UART parity/framing errors reported by the port
  uint32_t unusable = 0;         // Hlw8032Reject::Uncalibrated
  uint32_t implausible = 0;      // Corrupt and the plausibility rules
  uint32_t discarded_bytes = 0;  // bytes skipped while searching for a frame start
};

class Hlw8032Decoder {
 public:
  static constexpr size_t kFrameSize = 24;
  static constexpr uint8_t kCheckByte = 0x5A;
  static constexpr uint8_t kStateNormal = 0x55;
  static constexpr uint8_t kStateUncalibrated = 0xAA;
  static constexpr uint8_t kUpdateVoltageBit = 1u << 6;  // data-update register
  static constexpr uint8_t kUpdateCurrentBit = 1u << 5;
  static constexpr uint8_t kUpdatePowerBit = 1u << 4;
  static constexpr uint8_t kPfWrapBit = 1u << 7;

  explicit Hlw8032Decoder(uint32_t kv_e6 = kDefaultKvE6, uint32_t ki_e6 = kDefaultKiE6,
                          const MeterLimits& limits = {})
      : kv_e6_(kv_e6), ki_e6_(ki_e6), limits_(limits) {}

  // Feeds one received byte; byte_error = parity/framing error (the frame holding it is dropped).
  // Returns true when this byte completed a frame that was accepted (see sample()).
  bool feed(uint8_t byte, bool byte_error = false);

  // Last accepted frame (all zero before the first one).
  const MeterSample& sample() const { return sample_; }
  // Last frame that decoded, accepted or not plausible (its registers serve calibration: a wrong Kv or Ki
  // can make every frame implausible).
  const MeterSample& decoded() const { return decoded_; }
  const Hlw8032Stats& stats() const { return stats_; }
  Hlw8032Reject last_reject() const { return last_reject_; }
  uint32_t rejects_in_a_row() const { return rejects_in_a_row_; }  // checksum-good frames not accepted
  // The held values of these quantities no longer describe the load (e.g. the relay switched): they are
  // invalid until the chip refreshes them.
  void forget(uint8_t quantities);
  const MeterLimits& limits() const { return limits_; }
  void set_limits(const MeterLimits& limits) { limits_ = limits; }

  void set_calibration(uint32_t kv_e6, uint32_t ki_e6) {
    kv_e6_ = kv_e6;
    ki_e6_ = ki_e6;
  }
  uint32_t kv_e6() const { return kv_e6_; }
  uint32_t ki_e6() const { return ki_e6_; }

  // Stateless: validates and converts one complete 24-byte frame (checksum included).
  static bool is_state_byte(uint8_t b);
  static bool checksum_ok(const uint8_t* frame);
  // `held`: values for the quantities the frame did not refresh (their `valid` bits say which; nullptr =
  // none). `out` is filled whenever the registers decode (also for a plausibility reject).
  static Hlw8032Reject decode_frame(const uint8_t* frame, uint32_t kv_e6, uint32_t ki_e6,
                                    const MeterLimits& limits, MeterSample& out,
                                    const MeterSample* held = nullptr);

 private:
  void resync_from(size_t start);

  uint32_t kv_e6_;
  uint32_t ki_e6_;
  MeterLimits limits_;
  uint8_t buf_[kFrameSize] = {};
  size_t len_ = 0;
  MeterSample sample_;
  MeterSample decoded_;
  uint32_t held_frames_[3] = {};  // accepted frames since each quantity was last refreshed
  uint32_t rejects_in_a_row_ = 0;
  Hlw8032Stats stats_;
  Hlw8032Reject last_reject_ = Hlw8032Reject::None;
};

}  // namespace pbfw
