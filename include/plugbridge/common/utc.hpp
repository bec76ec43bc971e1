// Formatting a unix time in UTC (strftime), for log lines and messages.
#pragma once

#include <cstdint>
#include <string>

namespace pb {

// unix_ms as strftime formats it in UTC (seconds floored, also before 1970).
std::string format_utc(int64_t unix_ms, const char* strftime_format);

}  // namespace pb
