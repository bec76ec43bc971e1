#include "plugbridge/cli/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "context.hpp"

namespace pb::cli {

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

nlohmann::json control_request(const std::string& path, const nlohmann::json& request,
                               std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw CliError(exit_code::kUsage, "control socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) throw CliError(exit_code::kFailed, std::string("socket(): ") + std::strerror(errno));
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    std::string fix;
    if (err == ENOENT || err == ECONNREFUSED)
      fix =
          "is plugbridged running? start it (systemctl start plugbridged), or pass --socket PATH if its "
          "control_socket is elsewhere";
    else if (err == EACCES)
      fix = "add yourself to the plugbridge group (sudo adduser $USER plugbridge, then log in again)";
    else
      fix = "check control_socket in the configuration and that plugbridged is running";
    throw CliError(exit_code::kNoDaemon,
                   "daemon not reachable at " + path + ": " + std::strerror(err) + "\n  fix: " + fix);
  }
  std::string line = request.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(s.fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError(exit_code::kNoDaemon, "daemon closed the control connection at " + path);
    off += static_cast<size_t>(n);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string in;
  char buf[4096];
  for (;;) {
    auto nl = in.find('\n');
    if (nl != std::string::npos) {
      auto j = nlohmann::json::parse(in.substr(0, nl), nullptr, false);
      if (j.is_discarded() || !j.is_object())
        throw CliError(exit_code::kFailed, "unreadable answer from the daemon: " + in.substr(0, nl));
      return j;
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw CliError(exit_code::kFailed, "the daemon did not answer within " +
                                             std::to_string(timeout.count() / 1000) +
                                             " s\n  fix: check that plugbridged is running and not stuck "
                                             "(journalctl -u plugbridged), then try again");
    pollfd p{s.fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw CliError(exit_code::kNoDaemon, "the daemon closed the control connection without answering");
    in.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace pb::cli
