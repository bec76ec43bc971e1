#include "plugsim/events.hpp"

namespace plugsim {

void StdioEventSink::emit(const std::string& json) {
  std::fwrite(json.data(), 1, json.size(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace plugsim
