// Host implementations of the firmware's port interfaces: HAL (monotonic clock, relay and LED
// recorded) and persistent storage (a small file per socket, or memory).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <pbfw/hal.hpp>
#include <pbfw/socket_core.hpp>
#include <string>

namespace plugsim {

class HostHal : public pbfw::Hal {
 public:
  using RelayObserver = std::function<void(bool on)>;

  explicit HostHal(std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now())
      : epoch_(epoch) {}
  virtual ~HostHal() = default;

  uint64_t now_ms() override;
  void set_relay(bool on) override;
  void set_led(uint8_t r, uint8_t g, uint8_t b) override;

  // Called on every relay change (not on repeated writes of the same state).
  void on_relay_change(RelayObserver observer) { observer_ = std::move(observer); }
  bool relay() const { return relay_; }
  uint32_t led_rgb() const { return led_rgb_; }
  uint32_t relay_switches() const { return relay_switches_; }

 private:
  std::chrono::steady_clock::time_point epoch_;
  RelayObserver observer_;
  bool relay_ = false;
  uint32_t relay_switches_ = 0;
  uint32_t led_rgb_ = 0;
};

// A storage plugsim can own (pbfw::Storage's destructor is protected).
class HostStorage : public pbfw::Storage {
 public:
  virtual ~HostStorage() = default;
};

// One small text file per socket; saves are atomic (temp file + rename). With no (readable) file
// the boot counter starts at `fresh_boot_counter` (plugsim: the wall clock in seconds), not 0: a lost
// state dir must not reuse boot numbers the gateway already holds records for.
class FileStorage : public HostStorage {
 public:
  explicit FileStorage(std::filesystem::path path, uint32_t fresh_boot_counter = 0)
      : path_(std::move(path)), fresh_boot_counter_(fresh_boot_counter) {}
  bool load(pbfw::PersistentState& out) override;
  void save(const pbfw::PersistentState& state) override;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  uint32_t fresh_boot_counter_;
};

// No state directory: nothing survives the process, so the boot counter starts from the wall
// clock (seconds since the epoch) to still give every run a new boot number.
class MemoryStorage : public HostStorage {
 public:
  explicit MemoryStorage(uint32_t initial_boot_counter);
  bool load(pbfw::PersistentState& out) override;
  void save(const pbfw::PersistentState& state) override { state_ = state; }

 private:
  pbfw::PersistentState state_{};
};

}  // namespace plugsim
