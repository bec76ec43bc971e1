// pb-tuya-emu: the platform (responder) side of a Tuya edge gateway, for tests and bench work.
// Connects to a broker made by make-broker, answers devices/sync and properties/report, and
// publishes commands typed on stdin. Every message seen or sent is one JSON line on stdout.
#include <mqtt/async_client.h>
#include <openssl/crypto.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "responder.hpp"

namespace {

using nlohmann::json;
using pb::tuyaemu::Outgoing;
using pb::tuyaemu::Responder;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::int64_t now_s() {
  return now_ms() / 1000;
}

// One JSON object per line to stdout and the optional log file, flushed so tests see it at once.
class EventLog {
 public:
  explicit EventLog(const std::string& path) {
    if (!path.empty()) file_.open(path, std::ios::app);
  }
  bool file_ok() const { return !file_.is_open() || file_.good(); }
  void write(json event) {
    event["at_ms"] = now_ms();
    const std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace);
    std::lock_guard lock(mutex_);
    std::cout << line << '\n' << std::flush;
    if (file_.is_open()) file_ << line << '\n' << std::flush;
  }
  void message(const char* dir, const std::string& topic, const std::string& payload) {
    json event{{"dir", dir}, {"topic", topic}};
    json parsed = json::parse(payload, nullptr, false);
    if (parsed.is_discarded()) {
      event["payload"] = nullptr;
      event["payload_text"] = payload;
    } else {
      event["payload"] = std::move(parsed);
    }
    write(std::move(event));
  }

 private:
  std::mutex mutex_;
  std::ofstream file_;
};

class SubscribeListener : public mqtt::iaction_listener {
 public:
  SubscribeListener(EventLog& log, std::string topic) : log_(log), topic_(std::move(topic)) {}
  void on_success(const mqtt::token&) override {
    log_.write({{"dir", "event"}, {"event", "subscribed"}, {"topic", topic_}});
  }
  void on_failure(const mqtt::token& tok) override {
    log_.write({{"dir", "error"}, {"error", "subscribe failed"}, {"rc", tok.get_return_code()}});
  }

 private:
  EventLog& log_;
  std::string topic_;
};

class Emulator {
 public:
  Emulator(const std::string& uri, const std::string& client_id, Responder responder, EventLog& log)
      : client_(uri, client_id, /*maxBufferedMessages=*/1000, nullptr),
        responder_(std::move(responder)),
        log_(log),
        sub_topic_(responder_.topic_prefix() + "#"),
        sub_listener_(log, sub_topic_) {
    // Paho forgets subscriptions on a clean-session reconnect: subscribe on every connect.
    client_.set_connected_handler([this](const std::string& cause) {
      log_.write({{"dir", "event"}, {"event", "connected"}, {"cause", cause}});
      client_.subscribe(sub_topic_, 1, nullptr, sub_listener_);
    });
    client_.set_connection_lost_handler([this](const std::string& cause) {
      log_.write({{"dir", "event"}, {"event", "connection_lost"}, {"cause", cause}});
    });
    client_.set_message_callback([this](mqtt::const_message_ptr msg) { on_message(msg); });
  }

  bool connect(const mqtt::connect_options& opts, std::chrono::seconds give_up_after) {
    // Automatic reconnect only covers losses after a first success, so retry the first connect here.
    const auto deadline = std::chrono::steady_clock::now() + give_up_after;
    for (;;) {
      try {
        client_.connect(opts)->wait();
        return true;
      } catch (const mqtt::exception& e) {
        log_.write({{"dir", "error"}, {"error", "connect failed"}, {"what", e.what()}});
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // retry pacing, not sync
      }
    }
  }

  void publish(const Outgoing& out) { publish_text(out.topic, out.payload.dump()); }

  void publish_text(const std::string& topic, const std::string& text) {
    log_.message("out", topic, text);
    try {
      client_.publish(topic, text.data(), text.size(), 1, false);
    } catch (const mqtt::exception& e) {
      log_.write({{"dir", "error"}, {"error", "publish failed"}, {"topic", topic}, {"what", e.what()}});
    }
  }

  Outgoing make_command(const std::string& cid, const std::string& dp, const json& value,
                        const std::string& rid) {
    std::lock_guard lock(mutex_);
    return responder_.make_command(cid, dp, value, rid, now_s());
  }

  void fail_reports(int code, int count) {
    std::lock_guard lock(mutex_);
    responder_.fail_reports(code, count);
  }

  void disconnect() {
    try {
      client_.disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const mqtt::exception&) {
      // Exiting anyway.
    }
  }

 private:
  void on_message(const mqtt::const_message_ptr& msg) {
    const std::string& topic = msg->get_topic();
    const std::string& payload = msg->get_payload_str();
    log_.message("in", topic, payload);
    pb::tuyaemu::HandleResult result;
    {
      std::lock_guard lock(mutex_);
      result = responder_.handle(topic, payload, now_s());
    }
    for (const auto& v : result.violations) {
      log_.write({{"dir", "violation"}, {"topic", topic}, {"error", v}});
      std::cerr << "pb-tuya-emu: violation: " << v << '\n';
    }
    // Publishing without waiting is allowed from Paho's callback thread.
    for (const auto& reply : result.replies) publish(reply);
  }

  mqtt::async_client client_;
  std::mutex mutex_;  // guards responder_
  Responder responder_;
  EventLog& log_;
  std::string sub_topic_;
  SubscribeListener sub_listener_;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// `command CID DP VALUE_JSON [REQUEST_ID]`: VALUE_JSON may contain spaces, so first try the whole
// rest as JSON, else split the last word off as the request id.
bool handle_command_line(Emulator& emu, EventLog& log, const std::string& rest) {
  std::istringstream in(rest);
  std::string cid, dp;
  in >> cid >> dp;
  std::string tail;
  std::getline(in, tail);
  tail = trim(tail);
  if (cid.empty() || dp.empty() || tail.empty()) {
    log.write({{"dir", "error"}, {"error", "usage: command CID DP VALUE_JSON [REQUEST_ID]"}});
    return false;
  }
  std::string request_id;
  json value = json::parse(tail, nullptr, false);
  if (value.is_discarded()) {
    const auto space = tail.find_last_of(" \t");
    if (space != std::string::npos) {
      request_id = tail.substr(space + 1);
      value = json::parse(trim(tail.substr(0, space)), nullptr, false);
    }
  }
  if (value.is_discarded()) {
    log.write({{"dir", "error"}, {"error", "VALUE_JSON is not valid JSON"}, {"line", rest}});
    return false;
  }
  emu.publish(emu.make_command(cid, dp, value, request_id));
  return true;
}

// Paho's worker threads are detached and wind down after the last client is destroyed. Let them
// finish before exit so their OpenSSL thread state is freed (else LeakSanitizer reports it).
void wait_for_paho_threads(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  auto threads = [] {
    std::error_code ec;
    auto n = std::distance(std::filesystem::directory_iterator("/proc/self/task", ec),
                           std::filesystem::directory_iterator());
    return ec ? 1 : n;
  };
  while (threads() > 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace

int main(int argc, char** argv) {
  // Paho's detached worker threads can outlive main; OpenSSL's atexit cleanup would then pull the
  // library out from under their thread-exit handlers (segfault at exit). Must be the first OpenSSL call.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  CLI::App app{"Tuya edge gateway emulator (platform side)"};
  std::string host = "127.0.0.1";
  int port = 21883;
  std::string ca_file;
  std::string user = "tuya-edge";
  std::string password;
  std::string gateway_id;
  std::string log_path;
  std::optional<int> sync_fail_code;
  int sync_fail_count = -1;
  int connect_timeout_s = 10;
  app.add_option("--host", host, "broker host");
  app.add_option("--port", port, "broker port")->check(CLI::Range(1, 65535));
  app.add_option("--ca", ca_file, "CA certificate that signed the broker's cert")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--user", user, "MQTT user (the admin user from make-broker)");
  app.add_option("--password", password, "MQTT password")->required();
  app.add_option("--gateway-id", gateway_id, "gateway id (clientId of the gateway)")->required();
  app.add_option("--log", log_path, "also append the JSON lines to this file");
  app.add_option("--sync-fail-code", sync_fail_code, "answer devices/sync with this code");
  app.add_option("--sync-fail-count", sync_fail_count, "only the first N syncs fail (default: all)");
  app.add_option("--connect-timeout", connect_timeout_s, "seconds to keep retrying the first connect");
  CLI11_PARSE(app, argc, argv);

  EventLog log(log_path);
  if (!log.file_ok()) {
    std::cerr << "pb-tuya-emu: cannot open log file " << log_path << '\n';
    return 1;
  }

  pb::tuyaemu::ResponderOptions ropts;
  ropts.gateway_id = gateway_id;
  ropts.sync_fail_code = sync_fail_code;
  ropts.sync_fail_count = sync_fail_count;

  const std::string uri = "ssl://" + host + ":" + std::to_string(port);
  const std::string client_id = "tuya-edge-emu-" + pb::tuyaemu::make_uuid().substr(0, 8);
  auto emu = std::make_unique<Emulator>(uri, client_id, Responder(ropts), log);
  auto finish = [&emu, &log](int rc) {
    emu.reset();
    wait_for_paho_threads(std::chrono::seconds(2));
    log.write({{"dir", "event"}, {"event", "exit"}, {"rc", rc}});
    return rc;
  };

  auto ssl = mqtt::ssl_options_builder()
                 .trust_store(ca_file)
                 .enable_server_cert_auth(true)
                 .verify(true)
                 .error_handler([&log](const std::string& err) {
                   log.write({{"dir", "error"}, {"error", "tls"}, {"what", err}});
                 })
                 .finalize();
  auto conn_opts = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_3_1_1)
                       .user_name(user)
                       .password(password)
                       .ssl(std::move(ssl))
                       .clean_session(true)
                       .keep_alive_interval(std::chrono::seconds(20))
                       .connect_timeout(std::chrono::seconds(5))
                       .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(2))
                       .finalize();

  if (!emu->connect(conn_opts, std::chrono::seconds(connect_timeout_s))) {
    std::cerr << "pb-tuya-emu: cannot connect to " << uri << '\n';
    return finish(1);
  }

  std::string line;
  while (std::getline(std::cin, line)) {
    line = trim(line);
    if (line.empty()) continue;
    const auto space = line.find(' ');
    const std::string verb = line.substr(0, space);
    const std::string rest = space == std::string::npos ? std::string() : line.substr(space + 1);
    if (verb == "quit") break;
    if (verb == "command") {
      handle_command_line(*emu, log, rest);
    } else if (verb == "report-fail") {
      std::istringstream in(rest);
      int code = 0, count = 0;
      if (in >> code >> count && count >= 0) {
        emu->fail_reports(code, count);
        log.write({{"dir", "event"}, {"event", "report-fail"}, {"code", code}, {"count", count}});
      } else {
        log.write({{"dir", "error"}, {"error", "usage: report-fail CODE COUNT"}, {"line", line}});
      }
    } else if (verb == "raw") {
      emu->publish_text("gateway_id/" + gateway_id + "/commands", rest);
    } else {
      log.write({{"dir", "error"}, {"error", "unknown stdin command"}, {"line", line}});
    }
  }
  emu->disconnect();
  return finish(0);
}
