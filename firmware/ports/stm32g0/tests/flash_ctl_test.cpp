// The FLASH controller sequences on a fake register block and a fake flash array.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <stm32g0/flash_ctl.hpp>
#include <vector>

namespace {
using namespace stm32g0;

struct NoIrqGuard {};

struct Fake {
  alignas(8) std::array<uint32_t, 16> regs{};
  std::vector<uint32_t> mem = std::vector<uint32_t>(kG030K8.flash_size / 4, 0xFFFF'FFFFu);
  FlashCtl<NoIrqGuard> ctl{reinterpret_cast<uintptr_t>(regs.data()), reinterpret_cast<uintptr_t>(mem.data()),
                           kG030K8};
  uint32_t& r(uint32_t offset) { return regs[offset / 4]; }
  uint32_t at(uint32_t addr) const { return mem[(addr - kFlashBase) / 4]; }
  Fake() { r(flash::CR) = flash::CR_LOCK; }  // reset state: locked
};

TEST(FlashCtl, ProgramsBothWordsLowFirstAndRelocks) {
  Fake f;
  const uint32_t addr = kG030K8.data_start + 16;
  EXPECT_EQ(f.ctl.program_double_word(addr, 0x1122'3344'5566'7788ull), FlashStatus::Ok);
  EXPECT_EQ(f.at(addr), 0x5566'7788u);
  EXPECT_EQ(f.at(addr + 4), 0x1122'3344u);
  EXPECT_EQ(f.r(flash::KEYR), flash::KEY2);     // unlocked with KEY1 then KEY2
  EXPECT_FALSE(f.r(flash::CR) & flash::CR_PG);  // PG cleared afterwards
  EXPECT_TRUE(f.r(flash::CR) & flash::CR_LOCK);
}

TEST(FlashCtl, RefusesAnythingOutsideTheDataPages) {
  Fake f;
  EXPECT_EQ(f.ctl.program_double_word(kFlashBase, 0), FlashStatus::OutOfRange);  // vector table
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.devinfo_start, 0), FlashStatus::OutOfRange);
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.data_start - 8, 0), FlashStatus::OutOfRange);
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.flash_end() - 4, 0),
            FlashStatus::OutOfRange);  // straddles the end
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.flash_end(), 0), FlashStatus::OutOfRange);
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.data_start + 4, 0), FlashStatus::Misaligned);
  EXPECT_EQ(f.ctl.erase_page(0), FlashStatus::OutOfRange);
  EXPECT_EQ(f.ctl.erase_page(kG030K8.first_data_page() - 1), FlashStatus::OutOfRange);  // device info
  EXPECT_EQ(f.ctl.erase_page(kG030K8.first_data_page() + kG030K8.data_pages()), FlashStatus::OutOfRange);
  EXPECT_EQ(f.ctl.erase_page(0x0020'0000), FlashStatus::OutOfRange);  // would wrap the address
  for (uint32_t v : f.mem) ASSERT_EQ(v, 0xFFFF'FFFFu);                // nothing was written
  EXPECT_TRUE(f.r(flash::CR) & flash::CR_LOCK);                       // and it was never unlocked
  EXPECT_EQ(f.r(flash::KEYR), 0u);
}

TEST(FlashCtl, EraseSetsNothingButLockWhenDone) {
  Fake f;
  const uint32_t page = kG030K8.first_data_page() + 3;
  EXPECT_EQ(f.ctl.erase_page(page), FlashStatus::Ok);
  // PER and PNB are cleared after the operation; the controller is locked again.
  EXPECT_EQ(f.r(flash::CR), flash::CR_LOCK | flash::CR_STRT);  // STRT is cleared by hardware, not by us
  EXPECT_EQ(f.r(flash::KEYR), flash::KEY2);
}

TEST(FlashCtl, ControllerErrorFlagsBecomeHwError) {
  Fake f;
  // The fake never clears SR, so the flag stands in for an error raised by the operation itself.
  f.r(flash::SR) = flash::SR_PROGERR;
  EXPECT_EQ(f.ctl.program_double_word(kG030K8.data_start, 1), FlashStatus::HwError);
  EXPECT_TRUE(f.r(flash::SR) & flash::SR_EOP);   // flags are written back as 1s to clear them
  EXPECT_TRUE(f.r(flash::CR) & flash::CR_LOCK);  // locked again even after a failure
  f.r(flash::SR) = flash::SR_WRPERR;
  EXPECT_EQ(f.ctl.erase_page(kG030K8.first_data_page()), FlashStatus::HwError);
}

TEST(FlashCtl, PageNumberFieldFitsEveryPage) {
  // PNB must hold the last page of the bigger part.
  const uint32_t last = kG070KB.flash_size / kG070KB.page_size - 1;
  EXPECT_EQ((last << flash::CR_PNB_SHIFT) & ~flash::CR_PNB_MASK, 0u);
}

}  // namespace
