#include "plugbridge/common/utc.hpp"

#include <ctime>

namespace pb {

std::string format_utc(int64_t unix_ms, const char* strftime_format) {
  const auto t = static_cast<std::time_t>(unix_ms / 1000 - (unix_ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, strftime_format, &tm);
  return std::string(buf, n);
}

}  // namespace pb
