// FLASH program/erase for the persistent-data area (sequences in flash_ctl.hpp), ECC-safe reads.
// The CPU stalls while the single bank is busy (a page erase takes ~22 ms): interrupts wait too, so
// UART bytes arriving meanwhile can overrun; the meter decoder and the LAN protocol both recover.
#include <stm32g0/drivers.hpp>
#include <stm32g0/flash_ctl.hpp>
#include <stm32g0/layout.hpp>

namespace stm32g0 {
namespace {
volatile bool g_ecc_double_error = false;
FlashCtl<IrqLock> g_ctl(kFlashRegBase, kFlashBase, kLayout);
}  // namespace

bool flash_read_double_word(uint32_t addr, uint64_t& out) {
  g_ecc_double_error = false;
  const auto* p = reinterpret_cast<const volatile uint32_t*>(addr);
  const uint32_t lo = p[0], hi = p[1];
  __asm volatile("dsb\n isb" ::: "memory");  // a pending ECC NMI is taken before the check below
  out = (uint64_t{hi} << 32) | lo;
  return !g_ecc_double_error;
}

FlashStatus flash_program_double_word(uint32_t addr, uint64_t value) {
  if (!g_ctl.in_data_area(addr, 8)) return FlashStatus::OutOfRange;
  if (addr % 8 != 0) return FlashStatus::Misaligned;
  uint64_t cur;
  if (!flash_read_double_word(addr, cur) || cur != ~uint64_t{0}) return FlashStatus::NotErased;
  return g_ctl.program_double_word(addr, value);
}

FlashStatus flash_erase_page(uint32_t page) {
  return g_ctl.erase_page(page);
}

}  // namespace stm32g0

// Only flash ECC double errors raise the NMI on this board: note it for flash_read_double_word and go on.
extern "C" void NMI_Handler() {
  using namespace stm32g0;
  const uint32_t eccr = reg(kFlashRegBase, flash::ECCR);
  if (eccr & flash::ECCR_ECCD) {
    reg(kFlashRegBase, flash::ECCR) = eccr | flash::ECCR_ECCD;  // write 1 to clear (keeps ECCC's enable)
    g_ecc_double_error = true;
    return;
  }
  for (;;) {  // anything else is unexpected: the watchdog resets us
  }
}
