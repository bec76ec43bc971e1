// Limits of the commands the gateway takes (cloud and local alike); the control socket and the CLI
// check the same numbers before they ask.
#pragma once

#include <cstdint>

namespace pb::gateway {

// A countdown runs for at most a day (0 cancels it).
inline constexpr int64_t kMaxCountdownS = 86400;

}  // namespace pb::gateway
