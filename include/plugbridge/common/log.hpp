// Levelled logging to stderr. Lines start with a syslog priority prefix ("<6>") when
// stderr is journald's stream, so journalctl shows the level; otherwise "LEVEL ".
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace pb::log {

enum class Level { Debug = 0, Info = 1, Warning = 2, Error = 3 };

void set_level(Level level);
Level level();
// "debug", "info", "warning"/"warn", "error"; returns false on an unknown name.
bool parse_level(std::string_view name, Level& out);
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message);

// Stream-style helper: PB_LOG(Info, "lan") << "listening on " << port;
class Line {
 public:
  Line(Level level, std::string_view component) : level_(level), component_(component) {}
  ~Line() { write(level_, component_, out_.str()); }
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  template <typename T>
  Line& operator<<(const T& v) {
    out_ << v;
    return *this;
  }

 private:
  Level level_;
  std::string_view component_;
  std::ostringstream out_;
};

}  // namespace pb::log

// A for-statement (not if/else) so that PB_LOG may stand as the body of an unbraced if/else.
// The same with a level chosen at run time: PB_LOG_AT(quiet ? Level::Debug : Level::Info, "x").
#define PB_LOG_AT(LEVEL_VALUE, COMPONENT)                                                       \
  for (bool pb_log_once_ = ::pb::log::enabled(LEVEL_VALUE); pb_log_once_; pb_log_once_ = false) \
  ::pb::log::Line(LEVEL_VALUE, COMPONENT)

#define PB_LOG(LEVEL, COMPONENT)                                                                            \
  for (bool pb_log_once_ = ::pb::log::enabled(::pb::log::Level::LEVEL); pb_log_once_; pb_log_once_ = false) \
  ::pb::log::Line(::pb::log::Level::LEVEL, COMPONENT)
