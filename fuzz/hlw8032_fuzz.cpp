// HLW8032 UART stream. Input layout (see make_seeds.cpp):
//   byte 0     mode: bit 0 = calibration from bytes 1..8 (Kv, Ki x 1e6, u32 big-endian) instead of
//              the reference board's; bit 1 = the stream is (byte, flags) pairs, flags bit 0 marking
//              a UART parity/framing error on that byte
//   then       the stream, fed byte by byte to Hlw8032Decoder::feed
// Checks, besides memory safety and arithmetic (UBSan):
//  - every byte is accounted for: discarded, in a 24-byte frame that was decoded (accepted or
//    rejected), or still buffered (fewer than 24);
//  - feed returns true exactly when the accepted-frame count grows, and a rejected frame leaves the
//    last sample alone;
//  - an accepted sample keeps the decoder's plausibility limits (voltage band, current rating,
//    P <= V x I within tolerance, PF <= 1), and a quantity without a value reads 0.
#include <cstring>
#include <pbfw/hlw8032.hpp>

#include "fuzz_check.hpp"

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void check_sample(const pbfw::MeterSample& s, const pbfw::MeterLimits& lim) {
  using pbfw::kMeterCurrent;
  using pbfw::kMeterPower;
  using pbfw::kMeterVoltage;
  // Measured in this frame: what the chip refreshed is what the plausibility rules judged.
  if ((s.refreshed & kMeterVoltage) != 0 && !s.no_mains) {
    const uint64_t band = uint64_t{lim.nominal_voltage_mv} * lim.voltage_band_pct / 100u;
    PB_FUZZ_CHECK(s.voltage_mv + band >= lim.nominal_voltage_mv &&
                  s.voltage_mv <= lim.nominal_voltage_mv + band);
  }
  PB_FUZZ_CHECK(uint64_t{s.current_ua} <=
                uint64_t{lim.rated_current_ma} * (100u + lim.current_margin_pct) * 10u);
  if (((s.valid & kMeterVoltage) != 0 || s.no_mains) && (s.valid & kMeterCurrent) != 0)
    PB_FUZZ_CHECK(uint64_t{s.power_mw} * 100u <= uint64_t{s.apparent_mva} * (100u + lim.power_tolerance_pct) +
                                                     uint64_t{lim.power_margin_mw} * 100u);
  PB_FUZZ_CHECK(s.power_factor_e4 <= 10000);
  // What has no value reads 0; no mains is not a voltage.
  PB_FUZZ_CHECK((s.valid & kMeterVoltage) != 0 || s.voltage_mv == 0);
  PB_FUZZ_CHECK((s.valid & kMeterCurrent) != 0 || s.current_ua == 0);
  PB_FUZZ_CHECK((s.valid & kMeterPower) != 0 || s.power_mw == 0);
  PB_FUZZ_CHECK(!s.no_mains || s.voltage_mv == 0);
  PB_FUZZ_CHECK(!s.voltage_overflow || s.voltage_mv == 0);
  PB_FUZZ_CHECK(!s.current_overflow || s.current_ua == 0);
  PB_FUZZ_CHECK(!s.power_overflow || s.power_mw == 0);
  PB_FUZZ_CHECK(s.power_param != 0 && s.voltage_param != 0 && s.current_param != 0);
}

bool same(const pbfw::MeterSample& a, const pbfw::MeterSample& b) {
  return a.state == b.state && a.voltage_mv == b.voltage_mv && a.current_ua == b.current_ua &&
         a.power_mw == b.power_mw && a.apparent_mva == b.apparent_mva &&
         a.power_factor_e4 == b.power_factor_e4 && a.pf_count == b.pf_count && a.data_update == b.data_update;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  size_t off = 1;
  pbfw::Hlw8032Decoder dec;
  if (mode & 1u) {
    if (size < 9) return 0;
    dec.set_calibration(be32(data + 1), be32(data + 5));
    off = 9;
  }
  const bool with_errors = (mode & 2u) != 0;
  const size_t step = with_errors ? 2 : 1;

  uint64_t fed = 0;
  uint64_t bad_bytes = 0;
  for (; off + step <= size; off += step) {
    const uint8_t byte = data[off];
    const bool byte_error = with_errors && (data[off + 1] & 1u) != 0;
    const pbfw::Hlw8032Stats before = dec.stats();
    const pbfw::MeterSample last = dec.sample();
    const bool accepted = dec.feed(byte, byte_error);
    ++fed;
    const pbfw::Hlw8032Stats& st = dec.stats();
    PB_FUZZ_CHECK(st.frames == before.frames + (accepted ? 1 : 0));
    if (accepted) {
      PB_FUZZ_CHECK(dec.last_reject() == pbfw::Hlw8032Reject::None);
      check_sample(dec.sample(), dec.limits());
    } else {
      PB_FUZZ_CHECK(same(last, dec.sample()));
    }
    if (byte_error) {
      PB_FUZZ_CHECK(!accepted && st.byte_errors == before.byte_errors + 1);
      ++bad_bytes;
    }
    const uint64_t in_frames =
        uint64_t{pbfw::Hlw8032Decoder::kFrameSize} * (st.frames + st.unusable + st.implausible);
    const uint64_t accounted = st.discarded_bytes + in_frames;
    PB_FUZZ_CHECK(accounted <= fed && fed - accounted < pbfw::Hlw8032Decoder::kFrameSize);
  }
  PB_FUZZ_CHECK(dec.stats().byte_errors == bad_bytes);
  return 0;
}
