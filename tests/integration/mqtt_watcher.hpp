// A mosquitto_sub that records every message as one JSON line, and mosquitto_pub, against a
// password-protected PlainMosquittoBroker: what a platform or Home Assistant would see and send.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scenario.hpp"

namespace pb::itest {

using json = nlohmann::json;

struct Msg {
  std::string topic;
  std::string payload;
  bool retained = false;
};

// mosquitto_sub's -F %j gives the retain flag as a boolean or a number, by version.
inline bool retained(const json& j) {
  const auto r = j.find("retain");
  if (r == j.end()) return false;
  return r->is_boolean() ? r->get<bool>() : r->is_number() && r->get<int>() != 0;
}

// The payload of a -F %j line: null for an empty one.
inline std::string text(const json& j) {
  const auto p = j.find("payload");
  return p != j.end() && p->is_string() ? p->get<std::string>() : std::string();
}

// mosquitto_sub printing every message as one JSON line (-F %j).
class Watcher {
 public:
  Watcher(const test::PlainMosquittoBroker& broker, std::vector<std::string> filters)
      : proc_(argv(broker, std::move(filters))) {
    // Subscribed once the broker logged it; then nothing retained or new is missed.
  }
  std::vector<Msg> messages() const {
    std::vector<Msg> out;
    for (const std::string& line : proc_.stdout_lines()) {
      const json j = json::parse(line, nullptr, false);
      if (!j.is_object()) continue;
      out.push_back({j.value("topic", ""), text(j), retained(j)});
    }
    return out;
  }
  std::vector<Msg> on(const std::string& topic) const {
    std::vector<Msg> out;
    for (Msg& m : messages())
      if (m.topic == topic) out.push_back(std::move(m));
    return out;
  }
  bool wait(const std::function<bool(const Msg&)>& pred, std::chrono::milliseconds deadline) {
    return proc_.wait_for_stdout_line(
        [&](const std::string& line) {
          const json j = json::parse(line, nullptr, false);
          return j.is_object() && pred({j.value("topic", ""), text(j), retained(j)});
        },
        deadline);
  }
  // The last message on a topic arriving before the deadline satisfying pred.
  bool wait_on(const std::string& topic, const std::function<bool(const std::string&)>& pred,
               std::chrono::milliseconds deadline = 20s) {
    return wait([&](const Msg& m) { return m.topic == topic && pred(m.payload); }, deadline);
  }
  // A message after the first `from` ones satisfying pred.
  bool wait_after(size_t from, const std::function<bool(const Msg&)>& pred,
                  std::chrono::milliseconds deadline) {
    return test::wait_until(
        [&] {
          const std::vector<Msg> all = messages();
          for (size_t i = from; i < all.size(); ++i)
            if (pred(all[i])) return true;
          return false;
        },
        deadline);
  }
  std::string describe() { return proc_.describe(40); }

 private:
  static std::vector<std::string> argv(const test::PlainMosquittoBroker& b,
                                       std::vector<std::string> filters) {
    std::vector<std::string> a{"mosquitto_sub",
                               "-h",
                               "127.0.0.1",
                               "-p",
                               std::to_string(b.port()),
                               "-u",
                               b.username(),
                               "-P",
                               b.password(),
                               "-F",
                               "%j",
                               "-q",
                               "1"};
    for (std::string& f : filters) {
      a.push_back("-t");
      a.push_back(std::move(f));
    }
    return a;
  }
  test::Process proc_;
};

inline void publish(const test::PlainMosquittoBroker& b, const std::string& topic,
                    const std::string& payload) {
  test::Process p({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-u", b.username(),
                   "-P", b.password(), "-q", "1", "-t", topic, "-m", payload});
  ASSERT_EQ(p.wait_exit(10s), 0) << p.describe();
}

}  // namespace pb::itest
