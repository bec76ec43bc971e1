// The FLASH controller sequences (RM0454 "FLASH program and erase operations"), restricted to the
// persistent-data pages. Header-only and parameterised by the register block, the memory the flash is
// mapped at and an interrupt lock, so host tests run the sequences on fake registers and fake memory.
#pragma once

#include <cstdint>
#include <stm32g0/layout.hpp>
#include <stm32g0/regs.hpp>

namespace stm32g0 {

enum class FlashStatus : uint8_t { Ok, OutOfRange, Misaligned, NotErased, HwError };

template <typename IrqGuard>
class FlashCtl {
 public:
  // `mem` is where flash address 0x08000000 appears (0x08000000 on the MCU).
  constexpr FlashCtl(uintptr_t regs, uintptr_t mem, const MemoryLayout& layout)
      : regs_(regs), mem_(mem), layout_(layout) {}

  bool in_data_area(uint32_t addr, uint32_t len) const {
    return addr >= layout_.data_start && addr + len <= layout_.flash_end() && addr + len > addr;
  }
  volatile uint32_t* word(uint32_t addr) const {
    return reinterpret_cast<volatile uint32_t*>(mem_ + (addr - kFlashBase));
  }

  // The caller checks that the double word is erased (reading it may raise an ECC NMI on the MCU).
  FlashStatus program_double_word(uint32_t addr, uint64_t value) {
    using namespace flash;
    if (!in_data_area(addr, 8)) return FlashStatus::OutOfRange;
    if (addr % 8 != 0) return FlashStatus::Misaligned;
    wait_idle();
    unlock();
    take_errors();
    FlashStatus st;
    {
      [[maybe_unused]] IrqGuard irq;  // the two word writes belong together
      set_bits(reg(regs_, CR), CR_PG);
      *word(addr) = static_cast<uint32_t>(value);  // low word first, then the high word starts programming
      *word(addr + 4) = static_cast<uint32_t>(value >> 32);
      wait_idle();
      clear_bits(reg(regs_, CR), CR_PG);
      st = take_errors() ? FlashStatus::HwError : FlashStatus::Ok;
    }
    lock();
    return st;
  }

  // `page` counts from the start of flash (2 KB pages).
  FlashStatus erase_page(uint32_t page) {
    using namespace flash;
    if (page >= layout_.flash_size / layout_.page_size) return FlashStatus::OutOfRange;
    const uint32_t addr = kFlashBase + page * layout_.page_size;
    if (!in_data_area(addr, layout_.page_size)) return FlashStatus::OutOfRange;
    wait_idle();
    unlock();
    take_errors();
    reg(regs_, CR) = (reg(regs_, CR) & ~(CR_PNB_MASK | CR_PG)) | CR_PER | (page << CR_PNB_SHIFT);
    set_bits(reg(regs_, CR), CR_STRT);
    wait_idle();
    clear_bits(reg(regs_, CR), CR_PER | CR_PNB_MASK);
    const FlashStatus st = take_errors() ? FlashStatus::HwError : FlashStatus::Ok;
    lock();
    return st;
  }

 private:
  void wait_idle() {
    while (reg(regs_, flash::SR) & (flash::SR_BSY1 | flash::SR_CFGBSY)) {
    }
  }
  void unlock() {
    if (reg(regs_, flash::CR) & flash::CR_LOCK) {
      reg(regs_, flash::KEYR) = flash::KEY1;
      reg(regs_, flash::KEYR) = flash::KEY2;
    }
  }
  void lock() { set_bits(reg(regs_, flash::CR), flash::CR_LOCK); }
  // Errors of the last operation (and clears them: write 1 to clear).
  uint32_t take_errors() {
    const uint32_t e = reg(regs_, flash::SR) & flash::SR_ERRORS;
    reg(regs_, flash::SR) = e | flash::SR_EOP;
    return e;
  }

  uintptr_t regs_;
  uintptr_t mem_;
  const MemoryLayout& layout_;
};

}  // namespace stm32g0
