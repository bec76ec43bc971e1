// The `plugbridge` command line as a library: run() takes the arguments and the output streams,
// so tests call it directly and compare the output. apps/plugbridge/main.cpp only fills in the
// terminal facts (TTY, width, NO_COLOR) and calls run().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace pb::cli {

// Exit codes (also in `plugbridge --help` and the README).
namespace exit_code {
inline constexpr int kOk = 0;
inline constexpr int kFailed =
    1;  // the daemon or the socket refused or failed (offline, timeout, unsupported)
inline constexpr int kUsage = 2;     // bad arguments: unknown option, bad date, unknown cid
inline constexpr int kNoData = 3;    // configuration or database missing/unreadable
inline constexpr int kNoDaemon = 4;  // the daemon's control socket is not reachable
}  // namespace exit_code

struct Terminal {
  Terminal(std::ostream& o, std::ostream& e) : out(o), err(e) {}
  std::ostream& out;
  std::ostream& err;
  bool out_is_tty = false;        // colour and the chart's terminal width only then
  bool err_is_tty = false;        // progress bars only then
  bool no_color = false;          // NO_COLOR set (https://no-color.org)
  int width = 80;                 // columns
  std::optional<int64_t> now_ms;  // tests pin "now"; default: the system clock
  // Tests: runs after each socket's rows were read (energy, history), e.g. to commit meanwhile.
  std::function<void(const std::string& cid)> after_socket_read;
};

// args excludes the program name. Returns the exit code.
int run(const std::vector<std::string>& args, Terminal& term);

}  // namespace pb::cli
