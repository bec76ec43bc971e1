#include <stm32g0/drivers.hpp>

namespace stm32g0 {
namespace {
void set_field(uint32_t base, uint32_t offset, unsigned shift, uint32_t width_mask, uint32_t value) {
  volatile uint32_t& r = reg(base, offset);
  r = (r & ~(width_mask << shift)) | (value << shift);
}
}  // namespace

void gpio_clocks_on() {
  set_bits(reg(kRccBase, rcc::IOPENR), rcc::IOPENR_GPIOA | rcc::IOPENR_GPIOB | rcc::IOPENR_GPIOC);
}

void pin_output(Pin p, bool initial) {
  pin_write(p, initial);  // level first, so the pin never glitches (matters for the relay)
  set_field(p.port, gpio::OTYPER, p.n, 1, 0);       // push-pull
  set_field(p.port, gpio::OSPEEDR, p.n * 2, 3, 3);  // very high: WS2812 edges
  set_field(p.port, gpio::PUPDR, p.n * 2, 3, 0);
  set_field(p.port, gpio::MODER, p.n * 2, 3, static_cast<uint32_t>(gpio::Mode::Output));
}

void pin_input(Pin p, gpio::Pull pull) {
  set_field(p.port, gpio::PUPDR, p.n * 2, 3, static_cast<uint32_t>(pull));
  set_field(p.port, gpio::MODER, p.n * 2, 3, static_cast<uint32_t>(gpio::Mode::Input));
}

void pin_alternate(Pin p, uint8_t af, gpio::Pull pull) {
  set_field(p.port, p.n < 8 ? gpio::AFRL : gpio::AFRH, (p.n % 8) * 4, 0xF, af);
  set_field(p.port, gpio::PUPDR, p.n * 2, 3, static_cast<uint32_t>(pull));
  set_field(p.port, gpio::MODER, p.n * 2, 3, static_cast<uint32_t>(gpio::Mode::Alternate));
}

}  // namespace stm32g0
