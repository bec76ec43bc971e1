#include "plugsim/host_hal.hpp"

#include <fstream>
#include <system_error>

#include "plugbridge/common/log.hpp"

namespace plugsim {

uint64_t HostHal::now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - epoch_)
          .count());
}

void HostHal::set_relay(bool on) {
  if (on == relay_) return;
  relay_ = on;
  ++relay_switches_;
  if (observer_) observer_(on);
}

void HostHal::set_led(uint8_t r, uint8_t g, uint8_t b) {
  led_rgb_ = (uint32_t{r} << 16) | (uint32_t{g} << 8) | b;
}

// File format: one line "plugsim-state 3 <boot_counter> <energy_mwh> <energy_epoch> <relay_on> <tripped>
// <switch_count> <has_settings> <current_limit_ma> <over_current_duration_ms> <power_limit_w> <voltage_max_v>
// <voltage_min_v> <kv_e6> <ki_e6> <switch_disabled>". Older versions still load: version 2 lacks
// switch_disabled (switching enabled), version 1 has the first four values only (no settings).
bool FileStorage::load(pbfw::PersistentState& out) {
  const auto fresh = [&] {
    if (fresh_boot_counter_ == 0) return false;
    out = pbfw::PersistentState{};
    out.boot_counter = fresh_boot_counter_;
    return true;
  };
  std::ifstream in(path_);
  if (!in) return fresh();
  std::string magic;
  int version = 0;
  uint64_t boot = 0, energy = 0, epoch = 0, relay = 0;
  uint64_t v2[10] = {};  // tripped .. ki_e6
  uint64_t switch_disabled = 0;
  bool ok = static_cast<bool>(in >> magic >> version >> boot >> energy >> epoch >> relay) &&
            magic == "plugsim-state" && version >= 1 && version <= 3;
  if (ok && version >= 2) {
    for (uint64_t& v : v2) ok = ok && static_cast<bool>(in >> v);
    if (version == 3) ok = ok && static_cast<bool>(in >> switch_disabled) && switch_disabled <= 1;
    ok = ok && v2[0] <= 1 && v2[1] <= UINT32_MAX && v2[2] <= 1 && v2[3] <= UINT32_MAX &&
         v2[4] <= UINT32_MAX && v2[5] <= UINT32_MAX && v2[6] <= UINT16_MAX && v2[7] <= UINT16_MAX &&
         v2[8] <= UINT32_MAX && v2[9] <= UINT32_MAX;
  }
  if (!ok || boot > UINT32_MAX || epoch > UINT16_MAX || relay > 1) {
    PB_LOG(Warning, "plugsim") << "ignoring unreadable state file " << path_;
    return fresh();
  }
  out = pbfw::PersistentState{};
  out.boot_counter = static_cast<uint32_t>(boot);
  out.energy_mwh = energy;
  out.energy_epoch = static_cast<uint16_t>(epoch);
  out.relay_on = static_cast<uint8_t>(relay);
  if (version >= 2) {
    out.tripped = static_cast<uint8_t>(v2[0]);
    out.switch_count = static_cast<uint32_t>(v2[1]);
    out.has_settings = static_cast<uint8_t>(v2[2]);
    out.current_limit_ma = static_cast<uint32_t>(v2[3]);
    out.over_current_duration_ms = static_cast<uint32_t>(v2[4]);
    out.power_limit_w = static_cast<uint32_t>(v2[5]);
    out.voltage_max_v = static_cast<uint16_t>(v2[6]);
    out.voltage_min_v = static_cast<uint16_t>(v2[7]);
    out.kv_e6 = static_cast<uint32_t>(v2[8]);
    out.ki_e6 = static_cast<uint32_t>(v2[9]);
    out.switch_disabled = static_cast<uint8_t>(switch_disabled);
  }
  return true;
}

void FileStorage::save(const pbfw::PersistentState& state) {
  auto tmp = path_;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "plugsim-state 3 " << state.boot_counter << ' ' << state.energy_mwh << ' ' << state.energy_epoch
        << ' ' << unsigned{state.relay_on} << ' ' << unsigned{state.tripped} << ' ' << state.switch_count
        << ' ' << unsigned{state.has_settings} << ' ' << state.current_limit_ma << ' '
        << state.over_current_duration_ms << ' ' << state.power_limit_w << ' ' << state.voltage_max_v << ' '
        << state.voltage_min_v << ' ' << state.kv_e6 << ' ' << state.ki_e6 << ' '
        << unsigned{state.switch_disabled} << '\n';
    if (!out.flush()) {
      PB_LOG(Error, "plugsim") << "cannot write " << tmp;
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) {
    PB_LOG(Error, "plugsim") << "cannot rename " << tmp << ": " << ec.message();
  }
}

MemoryStorage::MemoryStorage(uint32_t initial_boot_counter) {
  state_.boot_counter = initial_boot_counter;
}

bool MemoryStorage::load(pbfw::PersistentState& out) {
  out = state_;
  return true;
}

}  // namespace plugsim
