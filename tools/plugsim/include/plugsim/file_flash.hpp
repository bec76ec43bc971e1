// plugsim --flash-dir: each socket keeps its state in the firmware's flash log (pbfw::FlashStorage) on a
// file that stands for the MCU's data pages, so plugsim exercises the same persistence code as the MCU.
#pragma once

#include <cstdint>
#include <filesystem>
#include <pbfw/flash.hpp>
#include <pbfw/flash_storage.hpp>

#include "plugsim/host_hal.hpp"

namespace plugsim {

// pbfw::Flash on a file of pages x page_size bytes (created erased, all 0xFF). Every program and erase is
// written through at once, so killing plugsim cuts the power between two flash operations. Like the
// STM32G0 it refuses to program a double word that is not erased.
class FileFlash final : public pbfw::Flash {
 public:
  // The STM32G0 data region: 8 pages of 2 KB (docs/persistence.md). Throws std::system_error.
  explicit FileFlash(const std::filesystem::path& path, uint32_t pages = 8, uint32_t page_size = 2048);
  ~FileFlash();
  FileFlash(const FileFlash&) = delete;
  FileFlash& operator=(const FileFlash&) = delete;

  uint32_t page_size() const override { return page_size_; }
  uint32_t page_count() const override { return pages_; }
  bool read(uint32_t offset, uint64_t& value) override;
  bool program(uint32_t offset, uint64_t value) override;
  bool erase_page(uint32_t page) override;

 private:
  int fd_ = -1;
  uint32_t pages_, page_size_;
};

// Like FileStorage, an empty (or unreadable) flash starts the boot counter at `fresh_boot_counter`.
class FlashFileStorage : public HostStorage {
 public:
  explicit FlashFileStorage(const std::filesystem::path& path, uint32_t fresh_boot_counter = 0)
      : flash_(path), storage_(flash_), fresh_boot_counter_(fresh_boot_counter) {}
  bool load(pbfw::PersistentState& out) override;
  void save(const pbfw::PersistentState& state) override;
  const pbfw::PersistLog& log() const { return storage_.log(); }

 private:
  FileFlash flash_;
  pbfw::FlashStorage storage_;
  uint32_t fresh_boot_counter_;
};

}  // namespace plugsim
