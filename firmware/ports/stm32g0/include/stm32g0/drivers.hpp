// Register-level drivers for the STM32G0 socket board. Only built into the ARM image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stm32g0/clock_config.hpp>
#include <stm32g0/flash_ctl.hpp>
#include <stm32g0/regs.hpp>
#include <stm32g0/ring_buffer.hpp>
#include <stm32g0/usart.hpp>

namespace stm32g0 {

// --- core / clock ---
void clock_init();    // HSI16 -> PLL -> 64 MHz, flash wait states, prefetch
void systick_init();  // 1 ms tick
uint64_t millis();    // since systick_init()
void nvic_enable(unsigned irq);
void watchdog_start(uint32_t timeout_ms);  // IWDG on the LSI; cannot be stopped once started
void watchdog_feed();
[[noreturn]] void system_reset();
void wait_for_interrupt();

// Interrupt masking that restores the previous state (nests).
class IrqLock {
 public:
  IrqLock();
  ~IrqLock();
  IrqLock(const IrqLock&) = delete;
  IrqLock& operator=(const IrqLock&) = delete;

 private:
  uint32_t primask_;
};

// --- GPIO ---
struct Pin {
  uint32_t port;  // kGpioABase, ...
  uint8_t n;
};
void gpio_clocks_on();
void pin_output(Pin p, bool initial);
void pin_input(Pin p, gpio::Pull pull);
void pin_alternate(Pin p, uint8_t af, gpio::Pull pull = gpio::Pull::None);
inline void pin_write(Pin p, bool high) {
  reg(p.port, high ? gpio::BSRR : gpio::BRR) = 1u << p.n;
}
inline bool pin_read(Pin p) {
  return (reg(p.port, gpio::IDR) >> p.n) & 1u;
}

// --- FLASH (data area only; the program, vector table and device-information page are refused) ---
FlashStatus flash_program_double_word(uint32_t addr, uint64_t value);  // 8-byte aligned, once after erase
FlashStatus flash_erase_page(uint32_t page);                           // page number from the flash base
// Reads a double word (little-endian); false = uncorrectable ECC error (a half-programmed word after a power
// cut), which the NMI handler clears instead of faulting.
bool flash_read_double_word(uint32_t addr, uint64_t& out);

// --- WS2812 on one pin (bit-banged from SRAM with interrupts off for ~30 us) ---
void ws2812_init(Pin p);
void ws2812_show(uint8_t r, uint8_t g, uint8_t b);

}  // namespace stm32g0
