// What the gateway needs from the Tuya uplink; implemented over uplink::Client in the daemon and by
// fakes in tests.
#pragma once

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
};

}  // namespace pb::gateway
