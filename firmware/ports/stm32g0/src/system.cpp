// Clock tree, SysTick, NVIC, IWDG and the newlib/C++ runtime stubs of the image (no heap, no exit).
#include <cerrno>
#include <stm32g0/drivers.hpp>

namespace stm32g0 {
namespace {
volatile uint64_t g_ticks_ms = 0;
}

void clock_init() {
  using namespace rcc;
  // 2 wait states before raising the clock; prefetch + instruction cache help the bit-banged paths too.
  reg(kFlashRegBase, flash::ACR) = (reg(kFlashRegBase, flash::ACR) & ~flash::ACR_LATENCY_MASK) |
                                   flash_latency(kSysClockHz) | flash::ACR_PRFTEN | flash::ACR_ICEN;
  while ((reg(kFlashRegBase, flash::ACR) & flash::ACR_LATENCY_MASK) != flash_latency(kSysClockHz)) {
  }
  set_bits(reg(kRccBase, CR), CR_HSION);
  while (!(reg(kRccBase, CR) & CR_HSIRDY)) {
  }
  clear_bits(reg(kRccBase, CR), CR_PLLON);  // PLLCFGR may only change while the PLL is off
  while (reg(kRccBase, CR) & CR_PLLRDY) {
  }
  reg(kRccBase, PLLCFGR) = kPll.pllcfgr();
  set_bits(reg(kRccBase, CR), CR_PLLON);
  while (!(reg(kRccBase, CR) & CR_PLLRDY)) {
  }
  reg(kRccBase, CFGR) = (reg(kRccBase, CFGR) & ~CFGR_SW_MASK) | CFGR_SW_PLLRCLK;  // AHB/APB prescalers 1
  while (((reg(kRccBase, CFGR) >> CFGR_SWS_SHIFT) & CFGR_SW_MASK) != CFGR_SW_PLLRCLK) {
  }
  set_bits(reg(kRccBase, AHBENR), AHBENR_FLASH);
}

void systick_init() {
  using namespace systick;
  reg(kSysTickBase, RVR) = kSysTickReload;
  reg(kSysTickBase, CVR) = 0;
  reg(kSysTickBase, CSR) = CSR_ENABLE | CSR_TICKINT | CSR_CLKSOURCE_CPU;
}

uint64_t millis() {
  IrqLock lock;  // a 64-bit load is two accesses on the M0+
  return g_ticks_ms;
}

void nvic_enable(unsigned irq) {
  reg(kNvicIserBase, 0) = 1u << irq;
}

void watchdog_start(uint32_t timeout_ms) {
  using namespace iwdg;
  const IwdgConfig c = iwdg_config(timeout_ms);
  reg(kIwdgBase, KR) = KEY_START;  // also starts the LSI
  reg(kIwdgBase, KR) = KEY_ACCESS;
  reg(kIwdgBase, PR) = c.pr;
  reg(kIwdgBase, RLR) = c.rlr;
  while (reg(kIwdgBase, SR) & 0x7u) {  // PVU/RVU/WVU: registers being updated
  }
  reg(kIwdgBase, KR) = KEY_RELOAD;
}

void watchdog_feed() {
  reg(kIwdgBase, iwdg::KR) = iwdg::KEY_RELOAD;
}

void system_reset() {
  __asm volatile("dsb" ::: "memory");
  reg(kScbAircr, 0) = (0x05FAu << 16) | (1u << 2);  // VECTKEY | SYSRESETREQ
  __asm volatile("dsb" ::: "memory");
  for (;;) {
  }
}

void wait_for_interrupt() {
  __asm volatile("wfi");
}

IrqLock::IrqLock() {
  uint32_t pm;
  __asm volatile("mrs %0, primask\n cpsid i" : "=r"(pm)::"memory");
  primask_ = pm;
}
IrqLock::~IrqLock() {
  __asm volatile("msr primask, %0" ::"r"(primask_) : "memory");
}

}  // namespace stm32g0

extern "C" {
void SysTick_Handler() {
  stm32g0::g_ticks_ms = stm32g0::g_ticks_ms + 1;
}

// No heap in this image: any malloc that sneaks in fails (and the build rejects malloc in the map).
void* _sbrk(int) {
  errno = ENOMEM;
  return reinterpret_cast<void*>(-1);
}
// Static objects are never destroyed: the firmware does not exit.
int __aeabi_atexit(void*, void (*)(void*), void*) {
  return 0;
}
void* __dso_handle = nullptr;
void __cxa_pure_virtual() {
  stm32g0::system_reset();
}
}
