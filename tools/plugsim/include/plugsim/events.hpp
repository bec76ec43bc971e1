// Machine-readable plugsim events: one JSON object per line (stdout in the executable).
#pragma once

#include <cstdio>
#include <string>

namespace plugsim {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // `json` is one complete JSON object without a trailing newline.
  virtual void emit(const std::string& json) = 0;
};

// Writes each event as a line and flushes, so a reading process sees it at once.
class StdioEventSink : public EventSink {
 public:
  explicit StdioEventSink(std::FILE* out = stdout) : out_(out) {}
  void emit(const std::string& json) override;

 private:
  std::FILE* out_;
};

}  // namespace plugsim
