// A small file system of its own for storage-fault tests: a tmpfs of a given size mounted over a
// fresh directory in a private mount namespace of the calling thread (threads and processes it starts
// later see it; the rest of the machine never does). It can be filled up, freed again and made
// read-only. Needs CAP_SYS_ADMIN (root): SmallDisk::unavailable() says why not, for GTEST_SKIP.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace pb::test {

class SmallDisk {
 public:
  // Why a SmallDisk cannot be made here (nullopt: it can).
  static std::optional<std::string> unavailable();

  explicit SmallDisk(std::size_t bytes);
  ~SmallDisk();
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::filesystem::path& path() const { return mount_point_; }
  // Writes a filler file until the file system is full; returns the bytes it took.
  std::size_t fill();
  // Removes the filler.
  void free();
  // Remounts read-only (true) or read-write (false).
  void set_read_only(bool read_only);

 private:
  std::filesystem::path mount_point_;
  std::size_t bytes_;
};

}  // namespace pb::test
