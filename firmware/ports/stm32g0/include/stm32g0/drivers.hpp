// Register-level drivers for the STM32G0 socket board. Only built into the ARM image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stm32g0/clock_config.hpp>
#include <stm32g0/regs.hpp>
#include <stm32g0/ring_buffer.hpp>

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

// --- USART: interrupt-driven receive into a ring, polled transmit ---
class Usart {
 public:
  static constexpr uint32_t kRxRing = 256;
  explicit Usart(uintptr_t base) : base_(base) {}
  void init(uint32_t brr, UartFormat format, bool rx, bool tx);  // clocks and pins are the caller's job
  void write(const uint8_t* data, size_t len);                   // blocks until the data is in the shifter
  void on_irq();                                                 // call from the USART's interrupt handler
  SpscRing<RxByte, kRxRing>& rx() { return rx_; }

 private:
  uintptr_t base_;
  SpscRing<RxByte, kRxRing> rx_;
};

// --- FLASH (data area only; the program, vector table and device-information page are refused) ---
enum class FlashStatus : uint8_t { Ok, OutOfRange, Misaligned, NotErased, HwError };
FlashStatus flash_program_double_word(uint32_t addr, uint64_t value);  // 8-byte aligned, once after erase
FlashStatus flash_erase_page(uint32_t page);                           // page number from the flash base
inline const uint8_t* flash_ptr(uint32_t addr) {
  return reinterpret_cast<const uint8_t*>(addr);
}

// --- WS2812 on one pin (bit-banged from SRAM with interrupts off for ~30 us) ---
void ws2812_init(Pin p);
void ws2812_show(uint8_t r, uint8_t g, uint8_t b);

}  // namespace stm32g0
