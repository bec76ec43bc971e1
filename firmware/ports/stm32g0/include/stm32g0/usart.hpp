// USART driver: interrupt-driven receive into a ring (each byte with its line-error flag), polled transmit.
// Header-only (templated on the ring size) so host tests can run it on a fake register block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stm32g0/clock_config.hpp>
#include <stm32g0/regs.hpp>
#include <stm32g0/ring_buffer.hpp>

namespace stm32g0 {

template <uint32_t RxRing>
class Usart {
 public:
  static constexpr uint32_t kRxRing = RxRing;
  explicit Usart(uintptr_t base) : base_(base) {}

  // Clocks and pins are the caller's job.
  void init(uint32_t brr, UartFormat format, bool rx, bool tx) {
    using namespace usart;
    reg(base_, CR1) = 0;  // word length and parity can only change while UE = 0
    reg(base_, BRR) = brr;
    reg(base_, CR2) = 0;        // 1 stop bit
    reg(base_, CR3) = CR3_EIE;  // framing/noise/overrun raise the interrupt too
    const uint32_t cr1 = usart_cr1(format, rx, tx);
    reg(base_, CR1) = cr1 & ~CR1_UE;
    reg(base_, CR1) = cr1;
  }

  // Blocks until the last byte is in the transmit shifter.
  void write(const uint8_t* data, size_t len) {
    for (size_t i = 0; i < len; ++i) {
      while (!(reg(base_, usart::ISR) & usart::ISR_TXE)) {
      }
      reg(base_, usart::TDR) = data[i];
    }
  }

  // Call from the USART's interrupt handler.
  void on_irq() {
    using namespace usart;
    const uint32_t isr = reg(base_, ISR);
    const uint32_t errors = isr & ISR_ERRORS;
    if (errors) reg(base_, ICR) = ICR_ERRORS;
    if (isr & ISR_RXNE) {
      // In 9-bit mode with parity the parity bit is RDR bit 8; the data byte is the low 8 bits.
      const auto b = static_cast<uint8_t>(reg(base_, RDR) & 0xFF);
      rx_.push(RxByte{b, errors != 0});
    } else if (errors) {
      rx_.push(RxByte{0, true});  // a byte was lost (overrun) without new data: the decoder must resync
    }
  }

  SpscRing<RxByte, RxRing>& rx() { return rx_; }

 private:
  uintptr_t base_;
  SpscRing<RxByte, RxRing> rx_;
};

}  // namespace stm32g0
