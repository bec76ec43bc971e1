// What the gateway needs from the Tuya uplink; implemented over uplink::Client in the daemon and by
// fakes in tests.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace pb::gateway {

class UplinkPort {
 public:
  virtual ~UplinkPort() = default;
  virtual bool connected() const = 0;
  // QoS 1 publish to gateway_id/{id}/{suffix}; done(ok) runs on the loop: true once the broker
  // acknowledged it (PUBACK), false when it was not sent or the link dropped before the PUBACK.
  virtual void publish(const std::string& suffix, std::string payload, std::function<void(bool)> done) = 0;
  // Messages that arrived and wait for their loop turn are handed to the gateway now (its
  // on_uplink_message, in arrival order): the gateway asks before each socket message, so a cloud
  // command never waits behind the readings queued on the loop.
  virtual void deliver_waiting() {}
  // Publishes accepted but not yet handed to the broker (waiting for the link's window). The gateway
  // holds back its measurement reports while this is long, so a burst of them (thousands of sockets
  // connecting at once) waits as a flag per socket instead of as thousands of queued messages.
  virtual size_t backlog() const { return 0; }
};

}  // namespace pb::gateway
