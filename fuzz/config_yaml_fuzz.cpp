// The YAML configuration, through load_string (load_file reads the file, then parses the same way).
// Checks, besides memory safety: the only exception is ConfigError, and its message names the
// source and a line of the document ("fuzz.yaml:LINE: ..."); a configuration that loads has a valid
// gateway id and sockets with valid, distinct cids and keys of a usable length.
#include <charconv>
#include <pbfw/limits.hpp>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "plugbridge/config/config.hpp"

namespace {

constexpr std::string_view kSource = "fuzz.yaml";

void check_error(const std::string& text, std::string_view msg) {
  PB_FUZZ_CHECK(msg.substr(0, kSource.size() + 1) == std::string(kSource) + ":");
  msg.remove_prefix(kSource.size() + 1);
  long line = 0;
  const auto [end, ec] = std::from_chars(msg.data(), msg.data() + msg.size(), line);
  PB_FUZZ_CHECK(ec == std::errc() && end != msg.data() + msg.size() && *end == ':');
  // Any line break yaml-cpp counts (\n, \r\n, \r) at most adds a line.
  long breaks = 0;
  for (const char c : text) breaks += c == '\n' || c == '\r';
  PB_FUZZ_CHECK(line >= 1 && line <= breaks + 1);
}

void check_config(const pb::config::Config& c) {
  PB_FUZZ_CHECK(!c.gateway_id.empty() && c.gateway_id.size() <= 128);
  std::set<std::string> cids;
  for (const auto& s : c.sockets) {
    PB_FUZZ_CHECK(pbfw::proto::valid_cid(s.cid.data(), s.cid.size()));
    PB_FUZZ_CHECK(cids.insert(s.cid).second);
    PB_FUZZ_CHECK(s.secret.size() >= pbfw::proto::kPskMin && s.secret.size() <= pbfw::proto::kPskMax);
    PB_FUZZ_CHECK(c.find_socket(s.cid) == &s);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    check_config(pb::config::load_string(text, std::string(kSource)));
  } catch (const pb::config::ConfigError& e) {
    check_error(text, e.what());
  }
  return 0;
}
