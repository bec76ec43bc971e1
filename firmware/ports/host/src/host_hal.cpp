#include "plugsim/host_hal.hpp"

#include <fstream>
#include <system_error>

#include "common/log.hpp"

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

// File format: one line "plugsim-state 1 <boot_counter> <energy_mwh> <energy_epoch> <relay_on>".
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
  if (!(in >> magic >> version >> boot >> energy >> epoch >> relay) || magic != "plugsim-state" ||
      version != 1 || boot > UINT32_MAX || epoch > UINT16_MAX || relay > 1) {
    PB_LOG(Warning, "plugsim") << "ignoring unreadable state file " << path_;
    return fresh();
  }
  out.boot_counter = static_cast<uint32_t>(boot);
  out.energy_mwh = energy;
  out.energy_epoch = static_cast<uint16_t>(epoch);
  out.relay_on = static_cast<uint8_t>(relay);
  return true;
}

void FileStorage::save(const pbfw::PersistentState& state) {
  auto tmp = path_;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "plugsim-state 1 " << state.boot_counter << ' ' << state.energy_mwh << ' ' << state.energy_epoch
        << ' ' << unsigned{state.relay_on} << '\n';
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
