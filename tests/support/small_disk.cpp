#include "support/small_disk.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace pb::test {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), "SmallDisk: " + what);
}

// Once per thread: a mount namespace of our own whose mounts do not propagate back.
std::optional<std::string> private_namespace() {
  thread_local std::optional<std::optional<std::string>> done;
  if (done) return *done;
  if (::unshare(CLONE_NEWNS) != 0) {
    done = std::optional<std::string>("unshare(CLONE_NEWNS): " + std::string(std::strerror(errno)) +
                                      " (needs root)");
  } else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    done = std::optional<std::string>("make / private: " + std::string(std::strerror(errno)));
  } else {
    done = std::optional<std::string>();
  }
  return *done;
}

}  // namespace

std::optional<std::string> SmallDisk::unavailable() {
  if (::geteuid() != 0) return "needs root (mounts a tmpfs in a private mount namespace)";
  return private_namespace();
}

SmallDisk::SmallDisk(std::size_t bytes) : bytes_(bytes) {
  if (auto why = unavailable()) throw std::runtime_error("SmallDisk: " + *why);
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pb-disk-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) fail("mkdtemp");
  mount_point_ = templ;
  const std::string opts = "size=" + std::to_string(bytes) + ",mode=0755";
  if (::mount("pb-small-disk", templ.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
    fail("mount tmpfs");
}

SmallDisk::~SmallDisk() {
  ::umount2(mount_point_.c_str(), MNT_DETACH);
  ::rmdir(mount_point_.c_str());
}

std::size_t SmallDisk::fill() {
  const auto filler = mount_point_ / ".filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) fail("open filler");
  std::vector<char> block(4096, 'x');
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::write(fd, block.data(), block.size());
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // ENOSPC (or a short write at the very end)
  }
  // The last partial block: byte by byte.
  while (::write(fd, block.data(), 1) == 1) ++total;
  ::close(fd);
  return total;
}

void SmallDisk::free() {
  std::error_code ec;
  std::filesystem::remove(mount_point_ / ".filler", ec);
}

void SmallDisk::set_read_only(bool read_only) {
  const std::string opts = "size=" + std::to_string(bytes_) + ",mode=0755";
  const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
  if (::mount("pb-small-disk", mount_point_.c_str(), "tmpfs", flags, opts.c_str()) != 0) fail("remount");
}

}  // namespace pb::test
