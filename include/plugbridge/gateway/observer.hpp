// What uplinks beside the Tuya edge (a local MQTT broker for Home Assistant, ...) learn from the
// gateway: which sockets changed, on the loop. They read a socket's state through
// Gateway::socket_view when they publish it, so a change costs them a mark, not a copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "plugbridge/store/store.hpp"

namespace pb::gateway {

// One roster socket as those uplinks show it.
struct SocketView {
  std::string cid;
  std::string name;
  std::string location;
  std::string product_id;
  std::string fw_version;  // from its last Hello since the daemon started ("" before)
  bool online = false;
  std::optional<bool> relay_on;
  std::optional<store::ReadingRow> last;  // newest reading since the daemon started
  // All-time energy as accounted (committed): never decreases, across restarts, factory resets and
  // counter wraps of the socket. 0 with energy_known false for a socket never accounted.
  int64_t energy_total_mwh = 0;
  bool energy_known = false;
  std::optional<int64_t> countdown_ends_ms;  // unix ms of the countdown's flip; none = not running
  int64_t last_seen_ms = 0;                  // unix ms of its last message since the start (0: none)
};

class Observer {
 public:
  enum Change : unsigned {
    kReading = 1,   // a new reading (measurements), or energy committed
    kRelay = 2,     // relay state or countdown
    kOnline = 4,    // its session came or went
    kSettings = 8,  // roster entry (name, location, ...) or firmware version
  };
  // A socket's state changed (`changes`: a mask of Change). Called for every reading: be cheap.
  virtual void socket_changed(const std::string& cid, unsigned changes) = 0;
  // The roster changed (a reload added, removed or renamed sockets); roster() has the new one.
  virtual void roster_changed() = 0;
  // Messages from its broker that wait for their loop turn: handle them now. The gateway asks
  // before each socket message, so commands do not wait behind queued readings.
  virtual void deliver_waiting() {}

 protected:
  ~Observer() = default;
};

}  // namespace pb::gateway
