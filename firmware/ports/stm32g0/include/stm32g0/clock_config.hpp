// System clock plan and the derived peripheral settings (baud-rate divisors, SysTick reload, WS2812 bit
// timing). All constexpr so the host tests check the numbers the MCU uses.
#pragma once

#include <cstdint>
#include <stm32g0/regs.hpp>

namespace stm32g0 {

// HSI16 -> PLL: /M=1, xN=8 -> VCO 128 MHz, /R=2 -> SYSCLK 64 MHz (the G0 maximum). AHB = APB = SYSCLK.
struct PllPlan {
  uint32_t hsi_hz = 16'000'000;
  uint32_t m = 1, n = 8, r = 2;
  constexpr uint32_t vco_hz() const { return hsi_hz / m * n; }
  constexpr uint32_t sysclk_hz() const { return vco_hz() / r; }
  constexpr uint32_t pllcfgr() const {
    return rcc::PLLCFGR_SRC_HSI16 | ((m - 1) << rcc::PLLCFGR_M_SHIFT) | (n << rcc::PLLCFGR_N_SHIFT) |
           rcc::PLLCFGR_REN | ((r - 1) << rcc::PLLCFGR_R_SHIFT);
  }
};
inline constexpr PllPlan kPll{};
inline constexpr uint32_t kSysClockHz = kPll.sysclk_hz();
inline constexpr uint32_t kPclkHz = kSysClockHz;
static_assert(kPll.vco_hz() >= 64'000'000 && kPll.vco_hz() <= 344'000'000, "PLL VCO range (RM0454)");
static_assert(kSysClockHz <= 64'000'000, "G0 maximum SYSCLK");
// Flash wait states for voltage range 1: <= 24 MHz 0 WS, <= 48 MHz 1 WS, <= 64 MHz 2 WS.
constexpr uint32_t flash_latency(uint32_t hclk_hz) {
  return hclk_hz <= 24'000'000 ? 0 : hclk_hz <= 48'000'000 ? 1 : 2;
}

inline constexpr uint32_t kSysTickHz = 1000;
inline constexpr uint32_t kSysTickReload = kSysClockHz / kSysTickHz - 1;
static_assert(kSysTickReload <= 0xFF'FFFF, "SysTick reload is 24 bits");

// --- USART ---
enum class UartFormat : uint8_t {
  k8N1,  // ESP8266 AT link
  k8E1,  // HLW8032: on STM32 the word length includes the parity bit, so 8E1 = 9-bit word + even parity
};

// BRR for 16x oversampling, rounded to nearest: baud = fck / BRR.
constexpr uint32_t usart_brr(uint32_t fck_hz, uint32_t baud) {
  return (fck_hz + baud / 2) / baud;
}
// Actual baud rate error in parts per million (signed).
constexpr int32_t usart_baud_error_ppm(uint32_t fck_hz, uint32_t baud) {
  const uint64_t actual_x1e6 = uint64_t{fck_hz} * 1'000'000 / usart_brr(fck_hz, baud);
  return static_cast<int32_t>(static_cast<int64_t>(actual_x1e6 / baud) - 1'000'000);
}
constexpr bool usart_brr_valid(uint32_t brr) {
  return brr >= 16 && brr <= 0xFFFF;
}

constexpr uint32_t usart_cr1(UartFormat f, bool rx, bool tx) {
  uint32_t v = usart::CR1_UE;
  if (rx) v |= usart::CR1_RE | usart::CR1_RXNEIE;
  if (tx) v |= usart::CR1_TE;
  if (f == UartFormat::k8E1) v |= usart::CR1_M0 | usart::CR1_PCE | usart::CR1_PEIE;  // PS = 0: even
  return v;
}

inline constexpr uint32_t kMeterBaud = 4800;
inline constexpr uint32_t kEspBaud = 115200;
inline constexpr uint32_t kMeterBrr = usart_brr(kPclkHz, kMeterBaud);
inline constexpr uint32_t kEspBrr = usart_brr(kPclkHz, kEspBaud);
static_assert(usart_brr_valid(kMeterBrr) && usart_brr_valid(kEspBrr));

// --- WS2812 (one LED, GRB, MSB first): 1.25 us per bit; "0" high 0.4 us, "1" high 0.8 us (+-150 ns). ---
constexpr uint32_t ns_to_cycles(uint32_t ns, uint32_t hz = kSysClockHz) {
  return static_cast<uint32_t>((uint64_t{ns} * hz + 500'000'000) / 1'000'000'000);
}
inline constexpr uint32_t kWsT0HighCycles = ns_to_cycles(400);
inline constexpr uint32_t kWsT1HighCycles = ns_to_cycles(800);
inline constexpr uint32_t kWsBitCycles = ns_to_cycles(1250);
inline constexpr uint32_t kWsResetUs = 300;  // low time that latches the colour (newer parts need > 280 us)
// The delay loop (subs + bne) takes 3 cycles per iteration on the M0+ from zero-wait-state SRAM.
inline constexpr uint32_t kDelayLoopCycles = 3;
constexpr uint32_t delay_loops(uint32_t cycles, uint32_t overhead) {
  return cycles > overhead + kDelayLoopCycles ? (cycles - overhead) / kDelayLoopCycles : 1;
}

// Colour to the 24 bits the LED shifts in (G, R, B; MSB first).
constexpr uint32_t ws2812_word(uint8_t r, uint8_t g, uint8_t b) {
  return (uint32_t{g} << 16) | (uint32_t{r} << 8) | b;
}

}  // namespace stm32g0

namespace stm32g0 {

// IWDG on the ~32 kHz LSI: divider 4 << pr (pr 0..6), 12-bit reload. Picks the finest divider that fits.
struct IwdgConfig {
  uint32_t pr, rlr;
};
inline constexpr uint32_t kLsiHz = 32'000;
constexpr IwdgConfig iwdg_config(uint32_t timeout_ms) {
  for (uint32_t pr = 0; pr <= 6; ++pr) {
    const uint64_t ticks = uint64_t{timeout_ms} * kLsiHz / (4u << pr) / 1000;
    if (ticks <= 0x1000) return IwdgConfig{pr, ticks == 0 ? 0u : static_cast<uint32_t>(ticks - 1)};
  }
  return IwdgConfig{6, 0xFFF};  // longest: ~32.8 s
}

}  // namespace stm32g0
