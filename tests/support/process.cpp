#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "support/testsupport.hpp"

extern char** environ;

namespace pb::test {

namespace {

[[noreturn]] void throw_errno(const std::string& what, int err = errno) {
  throw std::system_error(err, std::generic_category(), what);
}

void ignore_sigpipe_once() {
  // A child that exits early must not kill the test through SIGPIPE on write_stdin.
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

#if defined(__aarch64__)
constexpr std::uint16_t kOwnMachine = EM_AARCH64;
#elif defined(__arm__)
constexpr std::uint16_t kOwnMachine = EM_ARM;
#elif defined(__x86_64__)
constexpr std::uint16_t kOwnMachine = EM_X86_64;
#elif defined(__i386__)
constexpr std::uint16_t kOwnMachine = EM_386;
#else
constexpr std::uint16_t kOwnMachine = EM_NONE;
#endif

// The program posix_spawnp would run for name: name itself if it has a slash, else the first
// executable file of that name on PATH.
std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

// True if file is an ELF program built for the machine this code was compiled for.
bool is_own_machine_elf(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  Elf32_Ehdr h{};  // e_ident and e_machine sit at the same offsets in the 32- and 64-bit headers
  if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) return false;
  return std::memcmp(h.e_ident, ELFMAG, SELFMAG) == 0 && h.e_machine == kOwnMachine;
}

// A cross-built test runs under a user-mode emulator (qemu-ARCH-static, no binfmt_misc), but the
// kernel cannot start a child built for the same foreign machine. PB_TEST_EMULATOR, the emulator's
// command line (words separated by spaces, e.g. "/usr/bin/qemu-aarch64-static -L /"), is put in front
// of such children; the build machine's own programs (mosquitto, openssl, shell scripts) start as
// they are.
std::vector<std::string> with_emulator(const std::vector<std::string>& argv) {
  const char* emulator = std::getenv("PB_TEST_EMULATOR");
  if (emulator == nullptr || *emulator == '\0' || !is_own_machine_elf(resolve_program(argv[0]))) return argv;
  std::vector<std::string> out;
  std::stringstream words(emulator);
  for (std::string w; words >> w;) out.push_back(w);
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace

// One captured output stream: a reader thread appends complete lines to memory and a file.
struct Process::Stream {
  int fd = -1;
  std::filesystem::path file_path;
  std::ofstream file;
  mutable std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> lines;
  bool eof = false;
  std::atomic<bool> stop{false};
  std::thread reader;

  void run() {
    std::string partial;
    char buf[4096];
    for (;;) {
      pollfd pfd{fd, POLLIN, 0};
      // Short poll so a stop request is noticed even if a grandchild keeps the pipe open.
      const int pr = ::poll(&pfd, 1, stop ? 0 : 100);
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) {
        if (stop) break;
        continue;
      }
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial.append(buf, static_cast<std::size_t>(n));
      std::vector<std::string> complete;
      std::size_t start = 0;
      for (std::size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
        complete.push_back(partial.substr(start, nl - start));
      partial.erase(0, start);
      if (!complete.empty()) push(std::move(complete));
    }
    std::vector<std::string> rest;
    if (!partial.empty()) rest.push_back(std::move(partial));
    push(std::move(rest));
    std::lock_guard lock(mutex);
    eof = true;
    cv.notify_all();
  }

  void push(std::vector<std::string> complete) {
    std::lock_guard lock(mutex);
    for (auto& l : complete) {
      file << l << '\n';
      lines.push_back(std::move(l));
    }
    file.flush();
    cv.notify_all();
  }
};

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> extra_env)
    : argv_(std::move(argv)), out_(std::make_unique<Stream>()), err_(std::make_unique<Stream>()) {
  if (argv_.empty()) throw std::invalid_argument("Process: empty argv");
  ignore_sigpipe_once();

  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");

  // dup2 in the child clears close-on-exec on 0/1/2; every other pipe end stays private.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group, so the destructor also kills anything the child started (scripts).
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);

  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra_env) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> spawned = with_emulator(argv_);
  std::vector<char*> args;
  for (auto& a : spawned) args.push_back(a.data());
  args.push_back(nullptr);

  // posix_spawnp reports a program that cannot be started, but not under qemu-user (its vfork is a
  // fork: the child just exits 127), so that case is caught here first.
  if (const std::string program = resolve_program(argv_[0]); ::access(program.c_str(), X_OK) != 0) {
    const int err = errno;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    throw_errno("posix_spawnp " + argv_[0], err);
  }
  const int rc = ::posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw_errno("posix_spawnp " + argv_[0], rc);
  }
  stdin_fd_ = in_pipe[1];

  out_->fd = out_pipe[0];
  out_->file_path = dir_.path() / "stdout.log";
  out_->file.open(out_->file_path);
  err_->fd = err_pipe[0];
  err_->file_path = dir_.path() / "stderr.log";
  err_->file.open(err_->file_path);
  out_->reader = std::thread([s = out_.get()] { s->run(); });
  err_->reader = std::thread([s = err_.get()] { s->run(); });
}

Process::~Process() {
  if (running()) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    reap(true);
  } else {
    // The leader is gone; take down anything it left behind in its group.
    ::kill(-pid_, SIGKILL);
  }
  close_stdin();
  for (Stream* s : {out_.get(), err_.get()}) {
    s->stop = true;
    if (s->reader.joinable()) s->reader.join();
    ::close(s->fd);
  }
}

void Process::write_stdin(const std::string& line) {
  std::string data = line;
  if (data.empty() || data.back() != '\n') data.push_back('\n');
  std::size_t done = 0;
  while (done < data.size()) {
    if (stdin_fd_ < 0) throw std::runtime_error("Process: stdin already closed");
    const ssize_t n = ::write(stdin_fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write to stdin of " + argv_[0]);
    }
    done += static_cast<std::size_t>(n);
  }
}

void Process::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

bool Process::wait_for_line(Stream& s, const std::function<bool(const std::string&)>& pred,
                            std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::unique_lock lock(s.mutex);
  std::size_t checked = 0;
  for (;;) {
    for (; checked < s.lines.size(); ++checked)
      if (pred(s.lines[checked])) return true;
    if (s.eof) return false;
    if (s.cv.wait_until(lock, until) == std::cv_status::timeout) {
      for (; checked < s.lines.size(); ++checked)
        if (pred(s.lines[checked])) return true;
      return false;
    }
  }
}

bool Process::wait_for_stdout(const std::regex& re, std::chrono::milliseconds deadline) {
  return wait_for_line(
      *out_, [&re](const std::string& l) { return std::regex_search(l, re); }, deadline);
}

bool Process::wait_for_stderr(const std::regex& re, std::chrono::milliseconds deadline) {
  return wait_for_line(
      *err_, [&re](const std::string& l) { return std::regex_search(l, re); }, deadline);
}

bool Process::wait_for_stdout_line(const std::function<bool(const std::string&)>& pred,
                                   std::chrono::milliseconds deadline) {
  return wait_for_line(*out_, pred, deadline);
}

std::vector<std::string> Process::stdout_lines() const {
  std::lock_guard lock(out_->mutex);
  return out_->lines;
}

std::vector<std::string> Process::stderr_lines() const {
  std::lock_guard lock(err_->mutex);
  return err_->lines;
}

size_t Process::count_stderr_lines(const std::string& text, size_t from) const {
  std::lock_guard lock(err_->mutex);
  size_t n = 0;
  for (size_t i = from; i < err_->lines.size(); ++i) n += err_->lines[i].find(text) != std::string::npos;
  return n;
}

std::filesystem::path Process::stdout_path() const {
  return out_->file_path;
}
std::filesystem::path Process::stderr_path() const {
  return err_->file_path;
}

std::string Process::describe(std::size_t last_lines) const {
  std::ostringstream os;
  os << "process";
  for (const auto& a : argv_) os << ' ' << a;
  os << " (pid " << pid_ << ")\n";
  auto tail = [&](const char* name, const std::vector<std::string>& lines) {
    os << "--- last " << name << " lines:\n";
    const std::size_t from = lines.size() > last_lines ? lines.size() - last_lines : 0;
    for (std::size_t i = from; i < lines.size(); ++i) os << lines[i] << '\n';
  };
  tail("stdout", stdout_lines());
  tail("stderr", stderr_lines());
  return os.str();
}

void Process::signal(int sig) {
  std::lock_guard lock(exit_mutex_);
  // Never signal a reaped pid: the number may already belong to someone else.
  if (!exit_code_) ::kill(pid_, sig);
}

void Process::reap(bool block) {
  std::lock_guard lock(exit_mutex_);
  if (exit_code_) return;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(status))
      exit_code_ = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
      exit_code_ = 128 + WTERMSIG(status);
  } else if (r < 0) {
    exit_code_ = -1;  // not our child any more (should not happen); treat as gone
  }
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds deadline) {
  wait_until(
      [this] {
        reap(false);
        std::lock_guard lock(exit_mutex_);
        return exit_code_.has_value();
      },
      deadline);
  std::optional<int> code;
  {
    std::lock_guard lock(exit_mutex_);
    code = exit_code_;
  }
  // Its last lines may still be in the pipes: wait for EOF (bounded: a child may keep them open).
  if (code)
    for (Stream* s : {out_.get(), err_.get()}) {
      std::unique_lock lock(s->mutex);
      s->cv.wait_for(lock, std::chrono::seconds(2), [s] { return s->eof; });
    }
  return code;
}

bool Process::running() {
  reap(false);
  std::lock_guard lock(exit_mutex_);
  return !exit_code_.has_value();
}

}  // namespace pb::test
