// plugbridge: the command-line view of the gateway. Everything lives in src/cli (pb_cli); this
// only describes the terminal.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "plugbridge/cli/cli.hpp"

int main(int argc, char** argv) {
  pb::cli::Terminal term{std::cout, std::cerr};
  term.out_is_tty = ::isatty(STDOUT_FILENO) == 1;
  term.err_is_tty = ::isatty(STDERR_FILENO) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  term.no_color = no_color && *no_color;  // https://no-color.org: set and not empty
  winsize ws{};
  if (term.out_is_tty && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    term.width = ws.ws_col;
  else if (const char* cols = std::getenv("COLUMNS"))
    term.width = std::max(20, std::atoi(cols));
  std::ios::sync_with_stdio(false);
  return pb::cli::run(std::vector<std::string>(argv + 1, argv + argc), term);
}
