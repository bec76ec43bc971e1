// Vector table and reset handler: copy .data (and the SRAM-resident functions) from flash, zero .bss,
// run static constructors, call main(). No C library start-up code is linked (-nostartfiles).
#include <cstdint>
#include <stm32g0/regs.hpp>

extern "C" {
extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern void (*__preinit_array_start[])();
extern void (*__preinit_array_end[])();
extern void (*__init_array_start[])();
extern void (*__init_array_end[])();
[[noreturn]] void app_main();  // main.cpp (C++ forbids calling main())

[[noreturn]] void Reset_Handler();
void Default_Handler() {
  for (;;) {  // an unexpected interrupt: hang, the watchdog resets us
  }
}
[[noreturn]] void HardFault_Handler() {
  for (;;) {
  }
}
// Overridable by the drivers (weak aliases to the default handler).
void NMI_Handler() __attribute__((weak, alias("Default_Handler")));
void SVC_Handler() __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler() __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler() __attribute__((weak, alias("Default_Handler")));
void USART1_IRQHandler() __attribute__((weak, alias("Default_Handler")));
void USART2_IRQHandler() __attribute__((weak, alias("Default_Handler")));
}

namespace {
union Vector {
  void (*handler)();
  uint32_t* stack;
};

constexpr unsigned kSystemVectors = 16;
using Table = Vector[kSystemVectors + stm32g0::irq::kCount];

}  // namespace

// clang-format off
__attribute__((section(".isr_vector"), used)) const Table g_vectors = {
    {.stack = &_estack},
    {.handler = Reset_Handler},
    {.handler = NMI_Handler},
    {.handler = HardFault_Handler},
    {nullptr}, {nullptr}, {nullptr}, {nullptr}, {nullptr}, {nullptr}, {nullptr},  // reserved
    {.handler = SVC_Handler},
    {nullptr}, {nullptr},  // reserved
    {.handler = PendSV_Handler},
    {.handler = SysTick_Handler},
    // IRQ 0..26: unused by this firmware
    {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler},
    {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler},
    {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler},
    {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler},
    {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler}, {Default_Handler},
    {Default_Handler}, {Default_Handler},
    {.handler = USART1_IRQHandler},  // 27
    {.handler = USART2_IRQHandler},  // 28
    {Default_Handler}, {Default_Handler}, {Default_Handler},  // 29..31
};
// clang-format on

void Reset_Handler() {
  for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t* dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  for (auto* f = __preinit_array_start; f < __preinit_array_end; ++f) (*f)();
  for (auto* f = __init_array_start; f < __init_array_end; ++f) (*f)();
  app_main();
  for (;;) {
  }
}
