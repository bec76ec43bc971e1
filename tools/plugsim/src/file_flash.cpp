#include "plugsim/file_flash.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

#include "plugbridge/common/log.hpp"

namespace plugsim {

namespace {

bool read_exact(int fd, void* buf, size_t n, off_t at) {
  return pread(fd, buf, n, at) == static_cast<ssize_t>(n);
}

bool write_exact(int fd, const void* buf, size_t n, off_t at) {
  return pwrite(fd, buf, n, at) == static_cast<ssize_t>(n);
}

}  // namespace

FileFlash::FileFlash(const std::filesystem::path& path, uint32_t pages, uint32_t page_size)
    : pages_(pages), page_size_(page_size) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
  struct stat st {};
  const off_t size = off_t{pages} * page_size;
  if (fstat(fd_, &st) != 0 || st.st_size < size) {
    // New (or short) file: the rest is erased flash.
    const off_t from = st.st_size < size ? st.st_size : 0;
    const std::vector<uint8_t> ones(static_cast<size_t>(size - from), 0xFF);
    if (!write_exact(fd_, ones.data(), ones.size(), from)) {
      const int err = errno;
      ::close(fd_);
      throw std::system_error(err, std::generic_category(), "write " + path.string());
    }
  }
}

FileFlash::~FileFlash() {
  if (fd_ >= 0) ::close(fd_);
}

bool FileFlash::read(uint32_t offset, uint64_t& value) {
  uint8_t b[kWordSize];
  if (offset % kWordSize != 0 || offset + kWordSize > pages_ * page_size_ ||
      !read_exact(fd_, b, sizeof b, offset))
    return false;
  value = 0;
  for (uint32_t i = 0; i < kWordSize; ++i) value |= uint64_t{b[i]} << (8 * i);
  return true;
}

bool FileFlash::program(uint32_t offset, uint64_t value) {
  uint64_t now = 0;
  if (!read(offset, now) || now != kErased) return false;  // PROGERR: not erased
  uint8_t b[kWordSize];
  for (uint32_t i = 0; i < kWordSize; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
  return write_exact(fd_, b, sizeof b, offset);
}

bool FileFlash::erase_page(uint32_t page) {
  if (page >= pages_) return false;
  const std::vector<uint8_t> ones(page_size_, 0xFF);
  return write_exact(fd_, ones.data(), ones.size(), off_t{page} * page_size_);
}

bool FlashFileStorage::load(pbfw::PersistentState& out) {
  if (storage_.load(out)) return true;
  if (fresh_boot_counter_ == 0) return false;
  out = pbfw::PersistentState{};
  out.boot_counter = fresh_boot_counter_;
  return true;
}

void FlashFileStorage::save(const pbfw::PersistentState& state) {
  storage_.save(state);
  if (!storage_.last_save_ok()) PB_LOG(Error, "plugsim") << "flash log: save failed";
}

}  // namespace plugsim
