// Streaming decoder for the HLW8032 / CSE7766 energy-metering UART frames (24 bytes, 4800 8E1).
// Integer-only: calibration constants are fixed point (x 1e6). No heap, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/limits.hpp>

namespace pbfw {

using proto::kDefaultKiE6;  // the reference board's constants (wire contract)
using proto::kDefaultKvE6;

// Values of one accepted frame. Quantities whose register overflowed (= near zero) are 0.
struct MeterSample {
  uint8_t state = 0;  // state register (0x55 or 0xF0..0xFE with bit 0 clear)
  bool voltage_overflow = false;
  bool current_overflow = false;
  bool power_overflow = false;
  uint32_t voltage_mv = 0;
  uint32_t current_ua = 0;
  uint32_t power_mw = 0;         // active power
  uint32_t apparent_mva = 0;     // V x I
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

// Why a frame with a good checksum was not accepted.
enum class Hlw8032Reject : uint8_t {
  None,
  Uncalibrated,  // state 0xAA, state bit 0 (coefficient storage abnormal) or a zero parameter register
  Implausible,   // out-of-range values, P > 1.2 x S + margin, or a zero period register without overflow
};

struct Hlw8032Stats {
  uint32_t frames = 0;  // accepted
  uint32_t checksum_errors = 0;
  uint32_t byte_errors = 0;      // UART parity/framing errors reported by the port
  uint32_t unusable = 0;         // Hlw8032Reject::Uncalibrated
  uint32_t implausible = 0;      // Hlw8032Reject::Implausible
  uint32_t discarded_bytes = 0;  // bytes skipped while searching for a frame start
};

class Hlw8032Decoder {
 public:
  static constexpr size_t kFrameSize = 24;
  static constexpr uint8_t kCheckByte = 0x5A;
  static constexpr uint8_t kStateNormal = 0x55;
  static constexpr uint8_t kStateUncalibrated = 0xAA;
  // Plausibility limits (well above the socket's 250 V / 5 A / 1100 W ratings).
  static constexpr uint32_t kMaxVoltageMv = 300'000;
  static constexpr uint32_t kMaxCurrentUa = 20'000'000;
  static constexpr uint32_t kMaxPowerMw = 6'000'000;
  static constexpr uint32_t kPowerMarginMw = 2'000;  // slack on P <= 1.2 x S for tiny loads

  explicit Hlw8032Decoder(uint32_t kv_e6 = kDefaultKvE6, uint32_t ki_e6 = kDefaultKiE6)
      : kv_e6_(kv_e6), ki_e6_(ki_e6) {}

  // Feeds one received byte; byte_error = parity/framing error (the frame holding it is dropped).
  // Returns true when this byte completed a frame that was accepted (see sample()).
  bool feed(uint8_t byte, bool byte_error = false);

  // Last accepted frame (all zero before the first one).
  const MeterSample& sample() const { return sample_; }
  const Hlw8032Stats& stats() const { return stats_; }
  Hlw8032Reject last_reject() const { return last_reject_; }

  void set_calibration(uint32_t kv_e6, uint32_t ki_e6) {
    kv_e6_ = kv_e6;
    ki_e6_ = ki_e6;
  }
  uint32_t kv_e6() const { return kv_e6_; }
  uint32_t ki_e6() const { return ki_e6_; }

  // Stateless: validates and converts one complete 24-byte frame (checksum included).
  static bool is_state_byte(uint8_t b);
  static bool checksum_ok(const uint8_t* frame);
  static Hlw8032Reject decode_frame(const uint8_t* frame, uint32_t kv_e6, uint32_t ki_e6, MeterSample& out);

 private:
  void resync_from(size_t start);

  uint32_t kv_e6_;
  uint32_t ki_e6_;
  uint8_t buf_[kFrameSize] = {};
  size_t len_ = 0;
  MeterSample sample_;
  Hlw8032Stats stats_;
  Hlw8032Reject last_reject_ = Hlw8032Reject::None;
};

}  // namespace pbfw
