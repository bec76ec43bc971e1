#include "plugbridge/common/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "plugbridge/common/utc.hpp"

namespace pb::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_mutex;

bool journal_stream() {
  // systemd sets JOURNAL_STREAM when stderr is connected to the journal.
  static const bool is_journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return is_journal;
}

const char* name(Level l) {
  switch (l) {
    case Level::Debug:
      return "DEBUG";
    case Level::Info:
      return "INFO";
    case Level::Warning:
      return "WARN";
    case Level::Error:
      return "ERROR";
  }
  return "?";
}

int syslog_priority(Level l) {
  switch (l) {
    case Level::Debug:
      return 7;
    case Level::Info:
      return 6;
    case Level::Warning:
      return 4;
    case Level::Error:
      return 3;
  }
  return 6;
}
}  // namespace

void set_level(Level level) {
  g_level = static_cast<int>(level);
}
Level level() {
  return static_cast<Level>(g_level.load());
}
bool enabled(Level l) {
  return static_cast<int>(l) >= g_level.load();
}

bool parse_level(std::string_view n, Level& out) {
  if (n == "debug")
    out = Level::Debug;
  else if (n == "info")
    out = Level::Info;
  else if (n == "warning" || n == "warn")
    out = Level::Warning;
  else if (n == "error")
    out = Level::Error;
  else
    return false;
  return true;
}

void write(Level l, std::string_view component, std::string_view message) {
  std::lock_guard lock(g_mutex);
  if (journal_stream()) {
    std::fprintf(stderr, "<%d>%.*s: %.*s\n", syslog_priority(l), static_cast<int>(component.size()),
                 component.data(), static_cast<int>(message.size()), message.data());
  } else {
    auto now = std::chrono::system_clock::now();
    const auto unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    const std::string ts = format_utc(unix_ms, "%Y-%m-%dT%H:%M:%S");
    std::fprintf(stderr, "%s.%03dZ %-5s %.*s: %.*s\n", ts.c_str(), static_cast<int>(unix_ms % 1000), name(l),
                 static_cast<int>(component.size()), component.data(), static_cast<int>(message.size()),
                 message.data());
  }
  std::fflush(stderr);
}

}  // namespace pb::log
