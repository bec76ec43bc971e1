// The USART driver against a fake register block in host memory.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <stm32g0/usart.hpp>

namespace {
using namespace stm32g0;

struct FakeUsart {
  alignas(4) std::array<uint32_t, 16> regs{};
  uintptr_t base() { return reinterpret_cast<uintptr_t>(regs.data()); }
  uint32_t& at(uint32_t offset) { return regs[offset / 4]; }
};

TEST(Usart, InitProgramsDivisorAndFrameFormat) {
  FakeUsart f;
  Usart<16> u(f.base());
  u.init(kMeterBrr, UartFormat::k8E1, true, false);
  EXPECT_EQ(f.at(usart::BRR), 13333u);
  EXPECT_EQ(f.at(usart::CR1), usart_cr1(UartFormat::k8E1, true, false));
  EXPECT_EQ(f.at(usart::CR2), 0u);  // one stop bit
  EXPECT_TRUE(f.at(usart::CR3) & usart::CR3_EIE);
}

TEST(Usart, ReceivedBytesCarryLineErrorFlags) {
  FakeUsart f;
  Usart<16> u(f.base());
  // A good byte.
  f.at(usart::ISR) = usart::ISR_RXNE;
  f.at(usart::RDR) = 0x5A;
  u.on_irq();
  EXPECT_EQ(f.at(usart::ICR), 0u);
  // Parity error: 9-bit RDR holds the parity bit in bit 8; the byte is delivered, marked bad.
  f.at(usart::ISR) = usart::ISR_RXNE | usart::ISR_PE;
  f.at(usart::RDR) = 0x1A5;
  u.on_irq();
  EXPECT_EQ(f.at(usart::ICR), usart::ICR_ERRORS);  // flags cleared so the next byte is judged on its own
  f.at(usart::ICR) = 0;
  // Framing error.
  f.at(usart::ISR) = usart::ISR_RXNE | usart::ISR_FE;
  f.at(usart::RDR) = 0x00;
  u.on_irq();
  // Overrun with no new data: a byte was lost.
  f.at(usart::ISR) = usart::ISR_ORE;
  u.on_irq();

  RxByte b{};
  ASSERT_TRUE(u.rx().pop(b));
  EXPECT_EQ(b.value, 0x5A);
  EXPECT_FALSE(b.error);
  ASSERT_TRUE(u.rx().pop(b));
  EXPECT_EQ(b.value, 0xA5);
  EXPECT_TRUE(b.error);
  ASSERT_TRUE(u.rx().pop(b));
  EXPECT_TRUE(b.error);
  ASSERT_TRUE(u.rx().pop(b));
  EXPECT_TRUE(b.error);
  EXPECT_FALSE(u.rx().pop(b));
}

TEST(Usart, WriteWaitsForTransmitterEmpty) {
  FakeUsart f;
  Usart<16> u(f.base());
  f.at(usart::ISR) = usart::ISR_TXE;
  const uint8_t msg[] = {'A', 'T', '\r', '\n'};
  u.write(msg, sizeof msg);
  EXPECT_EQ(f.at(usart::TDR), static_cast<uint32_t>('\n'));
}

TEST(Usart, FullRingCountsLostBytes) {
  FakeUsart f;
  Usart<16> u(f.base());
  f.at(usart::ISR) = usart::ISR_RXNE;
  for (uint32_t i = 0; i < decltype(u)::kRxRing + 10; ++i) {
    f.at(usart::RDR) = i & 0xFF;
    u.on_irq();
  }
  EXPECT_EQ(u.rx().drops(), 11u);
  EXPECT_TRUE(u.rx().take_overflow());
}

}  // namespace
