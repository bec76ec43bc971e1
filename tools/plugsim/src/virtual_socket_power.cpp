// Mains loss for a VirtualSocket (plugsim's power-cut scenario): what the MCU, the meter chip and the
// ESP8266 lose when the power goes, and a cold boot from the socket's storage when it comes back.
#include <memory>

#include "plugsim/virtual_socket.hpp"

namespace plugsim {

void VirtualSocket::power_off() {
  if (!powered_) return;
  powered_ = false;
  transport().stop();     // the Wi-Fi module is off: the connection goes, no reconnects
  hal_.set_relay(false);  // an unpowered relay coil opens
  core_.button(false);
}

void VirtualSocket::power_on() {
  if (powered_) return;
  powered_ = true;
  // A cold boot: the firmware starts over with only what its storage kept; the meter chip's PF counter
  // starts again too. The core is replaced in place (same type, same storage).
  meter_ = Hlw8032Sim(spec_.kv_e6, true_ki_e6(spec_));
  std::destroy_at(&core_);
  std::construct_at(&core_, hal_, *storage_, static_cast<pbfw::LanTransport&>(*this), config_, records_.get(),
                    kResendCapacity);
  core_.set_observer(this);
  session_reported_ = false;
  acked_seq_ = 0;
  start(std::chrono::milliseconds(0));
}

}  // namespace plugsim
