// STM32G0 register map: only the peripherals and bits the socket firmware uses, written from the
// reference manual (RM0454, STM32G0x0) and the Cortex-M0+ generic user guide. No vendor headers.
// Offsets/bit positions are plain constants so host tests can check the derived values.
#pragma once

#include <cstdint>

namespace stm32g0 {

// --- memory map ---
inline constexpr uint32_t kFlashBase = 0x0800'0000;
inline constexpr uint32_t kSramBase = 0x2000'0000;
inline constexpr uint32_t kUidBase = 0x1FFF'7590;  // 96-bit unique device ID

inline constexpr uint32_t kIwdgBase = 0x4000'3000;
inline constexpr uint32_t kUsart2Base = 0x4000'4400;
inline constexpr uint32_t kUsart1Base = 0x4001'3800;
inline constexpr uint32_t kRccBase = 0x4002'1000;
inline constexpr uint32_t kFlashRegBase = 0x4002'2000;
inline constexpr uint32_t kGpioABase = 0x5000'0000;
inline constexpr uint32_t kGpioBBase = 0x5000'0400;
inline constexpr uint32_t kGpioCBase = 0x5000'0800;

inline constexpr uint32_t kSysTickBase = 0xE000'E010;
inline constexpr uint32_t kNvicIserBase = 0xE000'E100;
inline constexpr uint32_t kNvicIprBase = 0xE000'E400;
inline constexpr uint32_t kScbAircr = 0xE000'ED0C;

// --- RCC ---
namespace rcc {
inline constexpr uint32_t CR = 0x00, CFGR = 0x08, PLLCFGR = 0x0C, IOPENR = 0x34, AHBENR = 0x38,
                          APBENR1 = 0x3C, APBENR2 = 0x40, CSR = 0x60;
inline constexpr uint32_t CR_HSION = 1u << 8, CR_HSIRDY = 1u << 10, CR_PLLON = 1u << 24, CR_PLLRDY = 1u << 25;
inline constexpr uint32_t CFGR_SW_MASK = 0x7, CFGR_SW_PLLRCLK = 0x2, CFGR_SWS_SHIFT = 3;
inline constexpr uint32_t PLLCFGR_SRC_HSI16 = 0x2, PLLCFGR_M_SHIFT = 4, PLLCFGR_N_SHIFT = 8,
                          PLLCFGR_REN = 1u << 28, PLLCFGR_R_SHIFT = 29;
inline constexpr uint32_t IOPENR_GPIOA = 1u << 0, IOPENR_GPIOB = 1u << 1, IOPENR_GPIOC = 1u << 2;
inline constexpr uint32_t AHBENR_FLASH = 1u << 8;
inline constexpr uint32_t APBENR1_USART2 = 1u << 17;
inline constexpr uint32_t APBENR2_SYSCFG = 1u << 0, APBENR2_USART1 = 1u << 14;
inline constexpr uint32_t CSR_LSION = 1u << 0, CSR_LSIRDY = 1u << 1;
}  // namespace rcc

// --- FLASH interface ---
namespace flash {
inline constexpr uint32_t ACR = 0x00, KEYR = 0x08, SR = 0x10, CR = 0x14, ECCR = 0x18;
inline constexpr uint32_t ACR_LATENCY_MASK = 0x7, ACR_PRFTEN = 1u << 8, ACR_ICEN = 1u << 9;
inline constexpr uint32_t KEY1 = 0x4567'0123, KEY2 = 0xCDEF'89AB;
inline constexpr uint32_t SR_EOP = 1u << 0, SR_OPERR = 1u << 1, SR_PROGERR = 1u << 3, SR_WRPERR = 1u << 4,
                          SR_PGAERR = 1u << 5, SR_SIZERR = 1u << 6, SR_PGSERR = 1u << 7, SR_MISSERR = 1u << 8,
                          SR_FASTERR = 1u << 9, SR_RDERR = 1u << 14, SR_OPTVERR = 1u << 15,
                          SR_BSY1 = 1u << 16, SR_CFGBSY = 1u << 18;
inline constexpr uint32_t SR_ERRORS = SR_OPERR | SR_PROGERR | SR_WRPERR | SR_PGAERR | SR_SIZERR | SR_PGSERR |
                                      SR_MISSERR | SR_FASTERR | SR_RDERR | SR_OPTVERR;
inline constexpr uint32_t CR_PG = 1u << 0, CR_PER = 1u << 1, CR_PNB_SHIFT = 3, CR_PNB_MASK = 0x7Fu << 3,
                          CR_STRT = 1u << 16, CR_LOCK = 1u << 31;
// ECC: a double (uncorrectable) error sets ECCD and raises an NMI; write 1 to clear.
inline constexpr uint32_t ECCR_ECCC = 1u << 30, ECCR_ECCD = 1u << 31;
}  // namespace flash

// --- GPIO ---
namespace gpio {
inline constexpr uint32_t MODER = 0x00, OTYPER = 0x04, OSPEEDR = 0x08, PUPDR = 0x0C, IDR = 0x10, ODR = 0x14,
                          BSRR = 0x18, AFRL = 0x20, AFRH = 0x24, BRR = 0x28;
enum class Mode : uint32_t { Input = 0, Output = 1, Alternate = 2, Analog = 3 };
enum class Pull : uint32_t { None = 0, Up = 1, Down = 2 };
}  // namespace gpio

// --- USART (USART1/USART2) ---
namespace usart {
inline constexpr uint32_t CR1 = 0x00, CR2 = 0x04, CR3 = 0x08, BRR = 0x0C, ISR = 0x1C, ICR = 0x20, RDR = 0x24,
                          TDR = 0x28;
inline constexpr uint32_t CR1_UE = 1u << 0, CR1_RE = 1u << 2, CR1_TE = 1u << 3, CR1_RXNEIE = 1u << 5,
                          CR1_PEIE = 1u << 8, CR1_PS = 1u << 9, CR1_PCE = 1u << 10, CR1_M0 = 1u << 12,
                          CR1_OVER8 = 1u << 15, CR1_M1 = 1u << 28;
inline constexpr uint32_t CR3_EIE = 1u << 0;  // framing/noise/overrun error interrupt
inline constexpr uint32_t ISR_PE = 1u << 0, ISR_FE = 1u << 1, ISR_NE = 1u << 2, ISR_ORE = 1u << 3,
                          ISR_RXNE = 1u << 5, ISR_TC = 1u << 6, ISR_TXE = 1u << 7;
inline constexpr uint32_t ISR_ERRORS = ISR_PE | ISR_FE | ISR_NE | ISR_ORE;
inline constexpr uint32_t ICR_PECF = 1u << 0, ICR_FECF = 1u << 1, ICR_NECF = 1u << 2, ICR_ORECF = 1u << 3;
inline constexpr uint32_t ICR_ERRORS = ICR_PECF | ICR_FECF | ICR_NECF | ICR_ORECF;
}  // namespace usart

// --- IWDG (LSI ~32 kHz) ---
namespace iwdg {
inline constexpr uint32_t KR = 0x00, PR = 0x04, RLR = 0x08, SR = 0x0C;
inline constexpr uint32_t KEY_START = 0xCCCC, KEY_ACCESS = 0x5555, KEY_RELOAD = 0xAAAA;
}  // namespace iwdg

// --- SysTick ---
namespace systick {
inline constexpr uint32_t CSR = 0x00, RVR = 0x04, CVR = 0x08;
inline constexpr uint32_t CSR_ENABLE = 1u << 0, CSR_TICKINT = 1u << 1, CSR_CLKSOURCE_CPU = 1u << 2;
}  // namespace systick

// --- interrupt numbers (position in the vector table after the 16 system entries) ---
namespace irq {
inline constexpr unsigned kUsart1 = 27, kUsart2 = 28;
inline constexpr unsigned kCount = 32;
}  // namespace irq

// uintptr_t so host tests can point a driver at a fake register block in ordinary memory.
inline volatile uint32_t& reg(uintptr_t base, uint32_t offset) {
  return *reinterpret_cast<volatile uint32_t*>(base + offset);
}
// Read-modify-write (C++20 deprecates compound assignment to volatile).
inline void set_bits(volatile uint32_t& r, uint32_t mask) {
  r = r | mask;
}
inline void clear_bits(volatile uint32_t& r, uint32_t mask) {
  r = r & ~mask;
}

}  // namespace stm32g0
