// Client side of the daemon's control socket (docs/control-protocol.md): one request, one answer.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace pb::cli {

// Throws CliError(kNoDaemon) when nobody listens at path (with the reason and the fix), and
// CliError(kFailed) when the daemon does not answer within timeout.
nlohmann::json control_request(const std::string& path, const nlohmann::json& request,
                               std::chrono::milliseconds timeout);

}  // namespace pb::cli
