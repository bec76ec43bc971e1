#include <stm32g0/drivers.hpp>

namespace stm32g0 {

void Usart::init(uint32_t brr, UartFormat format, bool rx, bool tx) {
  using namespace usart;
  reg(base_, CR1) = 0;  // word length and parity can only change while UE = 0
  reg(base_, BRR) = brr;
  reg(base_, CR2) = 0;        // 1 stop bit
  reg(base_, CR3) = CR3_EIE;  // framing/noise/overrun raise the interrupt too
  const uint32_t cr1 = usart_cr1(format, rx, tx);
  reg(base_, CR1) = cr1 & ~CR1_UE;
  reg(base_, CR1) = cr1;
}

void Usart::write(const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    while (!(reg(base_, usart::ISR) & usart::ISR_TXE)) {
    }
    reg(base_, usart::TDR) = data[i];
  }
}

void Usart::on_irq() {
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

}  // namespace stm32g0
