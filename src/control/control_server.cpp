#include "plugbridge/control/control_server.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <pbfw/limits.hpp>
#include <stdexcept>
#include <vector>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/gateway.hpp"

namespace pb::control {

using json = nlohmann::json;
using boost::asio::local::stream_protocol;

class Server::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server* server, stream_protocol::socket sock, size_t max_line)
      : server_(server), sock_(std::move(sock)), buf_(max_line) {}

  void start() { read_next(); }

  // From the server's stop(): the server is going away, never touch it again.
  void detach() {
    server_ = nullptr;
    close();
  }

 private:
  void read_next() {
    if (closed_) return;
    boost::asio::async_read_until(
        sock_, buf_, '\n',
        [self = shared_from_this()](const boost::system::error_code& ec, size_t n) { self->on_line(ec, n); });
  }

  void on_line(const boost::system::error_code& ec, size_t n) {
    if (closed_) return;
    if (ec) {
      if (ec == boost::asio::error::not_found)
        PB_LOG(Warning, "control") << "closing a client whose request line exceeds " << buf_.max_size()
                                   << " bytes";
      else if (ec != boost::asio::error::eof && ec != boost::asio::error::operation_aborted)
        PB_LOG(Debug, "control") << "client read: " << ec.message();
      close();
      return;
    }
    std::string line(boost::asio::buffers_begin(buf_.data()), boost::asio::buffers_begin(buf_.data()) + n);
    buf_.consume(n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) return read_next();

    json req = json::parse(line, nullptr, false);
    if (req.is_discarded()) {
      send({{"ok", false}, {"error", "bad_request"}, {"message", "request is not valid JSON"}});
      return read_next();
    }
    // One request at a time per client: the next line is read once this one is answered.
    auto answered = std::make_shared<bool>(false);
    json id = req.is_object() && req.contains("id") ? req["id"] : json();
    std::weak_ptr<Session> weak = shared_from_this();
    server_->handler_(req, [weak, answered, id](json response) {
      if (*answered) return;
      *answered = true;
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (!id.is_null()) response["id"] = id;
      self->send(response);
      self->read_next();
    });
  }

  void send(const json& response) {
    out_.push_back(response.dump() + "\n");
    if (out_.size() == 1) write_front();
  }

  void write_front() {
    boost::asio::async_write(sock_, boost::asio::buffer(out_.front()),
                             [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                               if (self->closed_) return;
                               if (ec) return self->close();
                               self->out_.pop_front();
                               if (!self->out_.empty()) self->write_front();
                             });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    sock_.close(ignored);
    if (server_) {
      Server* s = server_;
      server_ = nullptr;
      s->sessions_.erase(shared_from_this());
    }
  }

  Server* server_;
  stream_protocol::socket sock_;
  boost::asio::streambuf buf_;
  std::deque<std::string> out_;
  bool closed_ = false;
};

namespace {

// True if something accepts connections on `path`.
bool someone_listens(boost::asio::io_context& io, const std::string& path) {
  stream_protocol::socket probe(io);
  boost::system::error_code ec;
  probe.connect(stream_protocol::endpoint(path), ec);
  return !ec;
}

}  // namespace

Server::Server(boost::asio::io_context& io, ServerOptions opts, Handler handler)
    : io_(io), opts_(std::move(opts)), handler_(std::move(handler)), acceptor_(io) {
  const std::string& path = opts_.path;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::runtime_error("control socket " + path +
                               ": exists and is not a socket; remove it or change control_socket");
    if (someone_listens(io_, path))
      throw std::runtime_error("control socket " + path +
                               ": another process (a second plugbridged?) already listens there");
    ::unlink(path.c_str());  // stale, from a daemon that did not exit cleanly
  }
  boost::system::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (!ec) acceptor_.bind(stream_protocol::endpoint(path), ec);
  if (ec)
    throw std::runtime_error("control socket " + path + ": cannot bind: " + ec.message() +
                             " (does the directory exist and is it writable by this user?)");
  // Nobody can connect before listen(), so fixing the mode here leaves no window.
  if (::chmod(path.c_str(), opts_.mode) != 0)
    PB_LOG(Warning, "control") << "chmod " << path << ": " << std::strerror(errno);
  if (!opts_.group.empty()) {
    std::vector<char> scratch(4096);
    struct group gr {};
    struct group* found = nullptr;
    if (::getgrnam_r(opts_.group.c_str(), &gr, scratch.data(), scratch.size(), &found) == 0 && found) {
      if (::chown(path.c_str(), static_cast<uid_t>(-1), found->gr_gid) != 0)
        PB_LOG(Warning, "control") << "chgrp " << opts_.group << " " << path << ": " << std::strerror(errno);
    }
  }
  acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    throw std::runtime_error("control socket " + path + ": listen: " + ec.message());
  }
  PB_LOG(Info, "control") << "control socket at " << path;
  accept();
}

Server::~Server() {
  stop();
}

void Server::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket sock) {
    if (ec == boost::asio::error::operation_aborted || stopped_) return;  // `this` may be gone when aborted
    if (!ec) {
      if (sessions_.size() >= opts_.max_clients) {
        PB_LOG(Warning, "control") << "refusing a client: " << sessions_.size() << " already connected";
        boost::system::error_code ignored;
        sock.close(ignored);
      } else {
        auto s = std::make_shared<Session>(this, std::move(sock), opts_.max_line);
        sessions_.insert(s);
        s->start();
      }
    } else {
      PB_LOG(Warning, "control") << "accept: " << ec.message();
    }
    accept();
  });
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (const auto& s : sessions) s->detach();
  ::unlink(opts_.path.c_str());
}

// ---------------------------------------------------------------------------------------------

namespace {

json error(const std::string& code, const std::string& message) {
  return {{"ok", false}, {"error", code}, {"message", message}};
}

json socket_json(const gateway::LiveSocket& s) {
  json j{{"cid", s.cid}, {"name", s.name}, {"online", s.online}};
  j["relay"] = s.relay_on ? json(*s.relay_on) : json();
  j["countdown_ends_ms"] = s.countdown_ends_ms ? json(*s.countdown_ends_ms) : json();
  if (s.last) {
    namespace proto = pbfw::proto;
    const auto& r = *s.last;
    // A quantity the meter did not measure (its valid flag clear, or no mains) is null, never 0.
    const auto measured = [&](uint8_t valid, uint32_t value) {
      return proto::measured(r.flags, valid) ? json(value) : json();
    };
    j["reading"] = {{"ts_ms", r.ts_ms},
                    {"meter_ok", (r.flags & proto::kMeterOk) != 0},
                    {"no_mains", proto::no_mains(r.flags)},
                    {"power_mw", measured(proto::kPowerValid, r.power_mw)},
                    {"voltage_mv", measured(proto::kVoltageValid, r.voltage_mv)},
                    {"current_ua", measured(proto::kCurrentValid, r.current_ua)},
                    {"energy_mwh", r.energy_mwh},
                    {"energy_epoch", r.energy_epoch}};
  } else {
    j["reading"] = nullptr;
  }
  return j;
}

std::string string_field(const json& req, const char* key) {
  auto it = req.find(key);
  return it != req.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Handler gateway_handler(gateway::Gateway& gw, ReloadFn reload) {
  return [&gw, reload = std::move(reload)](const json& req, Reply reply) {
    if (!req.is_object()) return reply(error("bad_request", "a request is a JSON object with a \"cmd\""));
    const std::string cmd = string_field(req, "cmd");
    if (cmd == "status") {
      // "sockets": false leaves the roster out: the counters alone cost nothing on the loop, the
      // roster's JSON grows with the sockets (a few megabytes at 10 000).
      const auto with = req.find("sockets");
      if (with != req.end() && !with->is_boolean())
        return reply(error("bad_request", "status takes \"sockets\": true or false"));
      json sockets = json::array();
      if (with == req.end() || with->get<bool>())
        for (const auto& s : gw.live_status()) sockets.push_back(socket_json(s));
      const gateway::Health h = gw.health();
      json storage = {
          {"ok", h.storage_failure.empty()},
          {"records_waiting", h.records_waiting},
          {"commits", h.commits},
          {"readings_received", h.readings_received},
          {"readings_committed", h.readings_committed},
          {"samples_written", gw.stats().samples_written},
          {"events_committed", h.events_committed},
          {"commits_failed", h.commits_failed},
          {"records_refused", gw.stats().records_refused},
          {"last_commit_ms", h.last_commit_ms ? json(h.last_commit_ms) : json()},
          {"last_commit_seconds", h.last_commit_ms ? json(h.last_commit_seconds) : json()},
          {"database_bytes", h.database_bytes >= 0 ? json(h.database_bytes) : json()},
          {"disk_written_bytes", h.disk_written_bytes >= 0 ? json(h.disk_written_bytes) : json()}};
      if (!h.storage_failure.empty()) storage["failure"] = h.storage_failure;
      const gateway::ClockStatus c = gw.clock_status();
      json clock = {{"state", c.state}, {"trusted", c.trusted}, {"now_ms", c.now_ms}};
      if (!c.reason.empty()) clock["reason"] = c.reason;
      json handshakes = json::object();
      for (const auto& [reason, n] : h.handshakes_failed) handshakes[reason] = n;
      json lan = {
          {"sessions_up", h.sessions_up}, {"roster", h.roster_size}, {"handshakes_failed", handshakes}};
      json by_code = json::object();
      for (const auto& [code, n] : h.commands_by_code) by_code[std::to_string(code)] = n;
      json commands = {{"by_code", std::move(by_code)}, {"confirmed", h.command_seconds.count}};
      json uplinks = json::array();
      for (const auto& u : h.uplinks)
        uplinks.push_back({{"name", u.name},
                           {"type", u.type},
                           {"connected", u.connected},
                           {"outbox_depth", u.outbox_depth},
                           {"published", u.published},
                           {"failed", u.failed},
                           {"last_error", u.last_error}});
      return reply({{"ok", true},
                    {"sockets", std::move(sockets)},
                    {"storage", std::move(storage)},
                    {"clock", std::move(clock)},
                    {"lan", std::move(lan)},
                    {"commands", std::move(commands)},
                    {"uplinks", std::move(uplinks)}});
    }
    if (cmd == "reload") {
      if (!reload) return reply(error("unsupported", "this daemon cannot reload its configuration"));
      return reply(reload());
    }
    if (cmd != "relay" && cmd != "countdown" && cmd != "calibrate")
      return reply(error("bad_request",
                         "unknown cmd '" + cmd + "'; valid: status, relay, countdown, calibrate, reload"));
    const std::string cid = string_field(req, "cid");
    if (cid.empty()) return reply(error("bad_request", cmd + " needs a \"cid\" string"));
    int64_t value = 0;
    std::string kind = cmd;
    if (cmd == "calibrate") {
      static const std::map<std::string, std::string> kinds{{"voltage", "calibrate_voltage"},
                                                            {"current", "calibrate_current"},
                                                            {"power", "calibrate_power"},
                                                            {"kv", "set_kv"},
                                                            {"ki", "set_ki"}};
      auto k = kinds.find(string_field(req, "quantity"));
      auto it = req.find("value");
      if (k == kinds.end() || it == req.end() || !it->is_number_integer())
        return reply(
            error("bad_request",
                  "calibrate needs \"quantity\": \"voltage\", \"current\", \"power\", \"kv\" or \"ki\" "
                  "and an integer \"value\" (mV, mA, mW, or the constant x 10^6)"));
      kind = k->second;
      value = it->get<int64_t>();
    } else if (cmd == "relay") {
      const std::string state = string_field(req, "state");
      if (state == "on")
        value = 1;
      else if (state == "off")
        value = 0;
      else if (state == "toggle")
        value = -1;
      else
        return reply(error("bad_request", "relay needs \"state\": \"on\", \"off\" or \"toggle\""));
    } else {
      auto it = req.find("seconds");
      if (it == req.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
          it->get<int64_t>() > int64_t{pbfw::proto::kMaxCountdownS})
        return reply(error("bad_request", "countdown needs \"seconds\": an integer 0.." +
                                              std::to_string(int64_t{pbfw::proto::kMaxCountdownS})));
      value = it->get<int64_t>();
    }
    gw.local_command(cid, kind, value, [reply, cid](gateway::LocalResult r) {
      bool ok = r.status == gateway::LocalResult::Status::Confirmed;
      json j{{"ok", ok}, {"cid", cid}};
      if (r.relay_on) j["relay"] = *r.relay_on;
      if (!ok) j["error"] = gateway::to_string(r.status);
      j["message"] = r.why;
      reply(std::move(j));
    });
  };
}

}  // namespace pb::control
