// FLASH program/erase for the persistent-data area (RM0454 "FLASH program and erase operations").
// The CPU stalls while the single bank is busy (a page erase takes ~22 ms): interrupts wait too, so
// UART bytes arriving meanwhile can overrun; the meter decoder and the LAN protocol both recover.
#include <stm32g0/drivers.hpp>
#include <stm32g0/layout.hpp>

namespace stm32g0 {
namespace {
using namespace flash;

void wait_idle() {
  while (reg(kFlashRegBase, SR) & (SR_BSY1 | SR_CFGBSY)) {
  }
}

void unlock() {
  if (reg(kFlashRegBase, CR) & CR_LOCK) {
    reg(kFlashRegBase, KEYR) = KEY1;
    reg(kFlashRegBase, KEYR) = KEY2;
  }
}

void lock() {
  reg(kFlashRegBase, CR) |= CR_LOCK;
}

// Errors of the last operation (and clears them).
uint32_t take_errors() {
  const uint32_t e = reg(kFlashRegBase, SR) & SR_ERRORS;
  reg(kFlashRegBase, SR) = e | SR_EOP;  // write 1 to clear
  return e;
}

volatile bool g_ecc_double_error = false;

bool in_data_area(uint32_t addr, uint32_t len) {
  return addr >= kLayout.data_start && addr + len <= kLayout.flash_end() && addr + len > addr;
}
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
  if (!in_data_area(addr, 8)) return FlashStatus::OutOfRange;
  if (addr % 8 != 0) return FlashStatus::Misaligned;
  uint64_t cur;
  if (!flash_read_double_word(addr, cur) || cur != ~uint64_t{0}) return FlashStatus::NotErased;

  wait_idle();
  unlock();
  take_errors();
  FlashStatus st;
  {
    IrqLock irq;  // the two word writes belong together
    reg(kFlashRegBase, CR) |= CR_PG;
    *reinterpret_cast<volatile uint32_t*>(addr) = static_cast<uint32_t>(value);
    *reinterpret_cast<volatile uint32_t*>(addr + 4) = static_cast<uint32_t>(value >> 32);
    wait_idle();
    reg(kFlashRegBase, CR) &= ~CR_PG;
    st = take_errors() ? FlashStatus::HwError : FlashStatus::Ok;
  }
  lock();
  return st;
}

FlashStatus flash_erase_page(uint32_t page) {
  const uint32_t addr = kFlashBase + page * kLayout.page_size;
  if (!in_data_area(addr, kLayout.page_size)) return FlashStatus::OutOfRange;
  wait_idle();
  unlock();
  take_errors();
  reg(kFlashRegBase, CR) =
      (reg(kFlashRegBase, CR) & ~(CR_PNB_MASK | CR_PG)) | CR_PER | (page << CR_PNB_SHIFT);
  reg(kFlashRegBase, CR) |= CR_STRT;
  wait_idle();
  reg(kFlashRegBase, CR) &= ~(CR_PER | CR_PNB_MASK);
  const FlashStatus st = take_errors() ? FlashStatus::HwError : FlashStatus::Ok;
  lock();
  return st;
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
