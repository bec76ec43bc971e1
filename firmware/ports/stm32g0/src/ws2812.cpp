// WS2812 bit-banging. The bit loop runs from SRAM (zero wait states, so the cycle counts hold regardless of
// the flash prefetch) with interrupts off: 24 bits x 1.25 us = 30 us, less than one byte time at 115200
// baud, so no UART byte is lost. The cycle budget per phase is in clock_config.hpp (host-tested); verify
// the edges on a scope when bringing up a new board (T0H 0.4 us, T1H 0.8 us, +-150 ns).
// Counted from the disassembly (arm-none-eabi-gcc 12.2, -Os; IOPORT stores 1 cycle, SRAM loads 2, taken
// branches 2): "1" = 52 cycles high + 25 low (812 + 391 ns), "0" = 26 high + 53 low (406 + 828 ns).
#include <stm32g0/drivers.hpp>

namespace stm32g0 {
namespace {
Pin g_led{kGpioABase, 0};
uint64_t g_last_frame_ms = 0;

// Busy loop of n iterations, kDelayLoopCycles each (sub 1 + taken bne 2). GCC emits inline asm in
// divided syntax for Thumb-1, where "sub rX, #1" is the flag-setting 16-bit form.
__attribute__((always_inline)) inline void spin(uint32_t n) {
  __asm volatile("1: sub %0, #1\n bne 1b" : "+l"(n)::"cc");
}

// Cycle overheads around the spins (movs, str to the single-cycle IOPORT, bit test, loop branch).
constexpr uint32_t kHighOverhead = 3, kLowOverhead = 9;
constexpr uint32_t k0High = delay_loops(kWsT0HighCycles, kHighOverhead);
constexpr uint32_t k1High = delay_loops(kWsT1HighCycles, kHighOverhead);
constexpr uint32_t k0Low = delay_loops(kWsBitCycles - kWsT0HighCycles, kLowOverhead);
constexpr uint32_t k1Low = delay_loops(kWsBitCycles - kWsT1HighCycles, kLowOverhead);

__attribute__((section(".ramfunc"), noinline, long_call)) void send_bits(volatile uint32_t* set,
                                                                         volatile uint32_t* clr,
                                                                         uint32_t mask, uint32_t word) {
  for (uint32_t bit = 1u << 23; bit != 0; bit >>= 1) {
    *set = mask;
    if (word & bit) {
      spin(k1High);
      *clr = mask;
      spin(k1Low);
    } else {
      spin(k0High);
      *clr = mask;
      spin(k0Low);
    }
  }
}
}  // namespace

void ws2812_init(Pin p) {
  g_led = p;
  pin_output(p, false);
}

void ws2812_show(uint8_t r, uint8_t g, uint8_t b) {
  // Latch: the line must stay low for the reset time between frames. Only wait if the previous frame was
  // sent within the last 1-2 ms (the usual case costs nothing).
  while (millis() <= g_last_frame_ms + kWsResetUs / 1000 + 1) {
  }
  {
    IrqLock irq;
    send_bits(&reg(g_led.port, gpio::BSRR), &reg(g_led.port, gpio::BRR), 1u << g_led.n, ws2812_word(r, g, b));
  }
  g_last_frame_ms = millis();
}

}  // namespace stm32g0
