#include "roster_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "context.hpp"
#include "plugbridge/config/config.hpp"

namespace pb::cli {

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

size_t indent_of(const std::string& line) {
  return line.find_first_not_of(' ') == std::string::npos ? line.size() : line.find_first_not_of(' ');
}

bool blank_or_comment(const std::string& line) {
  const size_t i = line.find_first_not_of(" \t\r");
  return i == std::string::npos || line[i] == '#';
}

// The value after "sockets:" without a trailing comment or spaces.
std::string value_after_key(const std::string& line) {
  std::string v = line.substr(line.find(':') + 1);
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '#' && (i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t')) {
      v.resize(i);
      break;
    }
  }
  const size_t b = v.find_first_not_of(" \t\r"), e = v.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : v.substr(b, e - b + 1);
}

bool is_sockets_key(const std::string& line) {
  if (line.rfind("sockets", 0) != 0) return false;
  const size_t i = line.find_first_not_of(" \t", 7);
  return i != std::string::npos && line[i] == ':';
}

}  // namespace

std::string to_hex(const std::vector<uint8_t>& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) s += {kHex[b >> 4], kHex[b & 0xF]};
  return s;
}

std::string append_sockets(const std::string& yaml, const std::vector<NewSocket>& add,
                           const std::string& comment) {
  std::vector<std::string> lines = split_lines(yaml);
  size_t key = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (is_sockets_key(lines[i])) {
      key = i;
      break;
    }
  }
  if (key == lines.size()) {
    lines.emplace_back("sockets:");
  } else {
    const std::string v = value_after_key(lines[key]);
    if (v == "[]" || v == "~" || v == "null") {
      lines[key] = "sockets:" + lines[key].substr(lines[key].find(v) + v.size());  // keeps a trailing comment
    } else if (!v.empty()) {
      throw CliError(exit_code::kNoData, "line " + std::to_string(key + 1) +
                                             ": `sockets:` is written in flow style; rewrite it as a block "
                                             "list (\"- cid: ...\" lines) so new sockets can be appended");
    }
  }

  // The block runs until the next top-level key or document marker; new items go right after its last
  // item line, so comments that introduce whatever follows stay with it.
  size_t insert_at = key + 1;
  size_t item_indent = 2;
  bool indent_known = false;
  for (size_t i = key + 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (blank_or_comment(l)) continue;
    const bool top_level = indent_of(l) == 0;
    const bool item_at_col0 = top_level && l[0] == '-' && (l.size() == 1 || l[1] == ' ');
    if (top_level && !item_at_col0) break;  // next key, "---" or "..."
    if (!indent_known) {
      const size_t ind = indent_of(l);
      if (l[ind] == '-') item_indent = ind, indent_known = true;
    }
    insert_at = i + 1;
  }

  const std::string dash(item_indent, ' '), body(item_indent + 2, ' ');
  std::vector<std::string> items;
  if (!comment.empty()) items.push_back(dash + "# " + comment);
  for (const NewSocket& s : add) {
    items.push_back(dash + "- cid: " + s.cid);
    items.push_back(body + "product_id: " + s.product_id);
    items.push_back(body + "secret: " + to_hex(s.secret));
  }
  lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(insert_at), items.begin(), items.end());

  std::string out;
  for (const std::string& l : lines) out += l + '\n';
  return out;
}

void write_config_atomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    throw CliError(exit_code::kFailed,
                   "cannot create a temporary file in " + dir.string() + ": " + std::strerror(errno));
  const std::string tmp = tmpl;
  auto fail = [&](int code, const std::string& what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw CliError(code, what);
  };
  // The new file takes the old one's owner, group and mode (root:plugbridge 0640 for the service): a
  // roster the service user can no longer read would stop it at its next start.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (::fchown(fd, st.st_uid, st.st_gid) != 0)
      fail(exit_code::kFailed, "cannot give the new " + path + " the owner and group of the old one (" +
                                   std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + "): " +
                                   std::strerror(errno) + "; run as root (sudo) or as the file's owner");
    if (::fchmod(fd, st.st_mode & 07777) != 0)
      fail(exit_code::kFailed, "cannot set the mode of " + tmp + ": " + std::strerror(errno));
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(exit_code::kFailed, "cannot write " + tmp + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail(exit_code::kFailed, "cannot sync " + tmp + ": " + std::strerror(errno));
  try {
    (void)config::load_file(tmp);
  } catch (const std::exception& e) {
    fail(exit_code::kNoData,
         std::string("the updated configuration would not load, left unchanged: ") + e.what());
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw CliError(exit_code::kFailed, "cannot replace " + path + ": " + std::strerror(err));
  }
  // The rename itself must reach the disk too.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace pb::cli
