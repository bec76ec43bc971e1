// Appends sockets to the daemon configuration's `sockets:` list as text, so every comment, blank
// line and key order of the file stays as the operator wrote it, and writes the file atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pb::cli {

struct NewSocket {
  std::string cid;
  std::string product_id;
  std::vector<uint8_t> secret;
};

// The configuration text with `add` appended to the top-level block list `sockets:` (created at the
// end of the file if missing; `sockets:` / `sockets: []` with no entries is fine). Items use the
// indentation of the existing ones; `comment` (may be empty) goes on a line above the new items.
// Throws CliError(kNoData) when the list is written in flow style ("[{...}]") and cannot be extended.
std::string append_sockets(const std::string& yaml, const std::vector<NewSocket>& add,
                           const std::string& comment = "");

// Writes `text` to a temporary file next to `path`, checks it with config::load_file (throws
// CliError(kNoData) naming the problem if it no longer loads), fsyncs and renames it over `path`,
// keeping the file's permission bits. A crash leaves either the old or the new file, never a mix.
void write_config_atomically(const std::string& path, const std::string& text);

std::string to_hex(const std::vector<uint8_t>& bytes);

}  // namespace pb::cli
