#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stm32g0/clock_config.hpp>
#include <stm32g0/layout.hpp>
#include <stm32g0/ring_buffer.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace stm32g0;

// --- ring buffer ---

TEST(SpscRing, FifoOrderAndCapacity) {
  SpscRing<int, 8> r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.capacity(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(r.push(i));
  EXPECT_FALSE(r.push(99));  // full: one slot stays free to tell full from empty
  EXPECT_EQ(r.size(), 7u);
  int v = -1;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(r.pop(v));
    EXPECT_EQ(v, i);
  }
  EXPECT_FALSE(r.pop(v));
  EXPECT_TRUE(r.empty());
}

TEST(SpscRing, WrapsAroundManyTimes) {
  SpscRing<uint32_t, 4> r;
  uint32_t next_out = 0;
  for (uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(r.push(i));
    if (i % 3 == 2) {  // drain in bursts so head and tail cross the end at different times
      uint32_t v;
      while (r.pop(v)) EXPECT_EQ(v, next_out++);
    }
  }
  uint32_t v;
  while (r.pop(v)) EXPECT_EQ(v, next_out++);
  EXPECT_EQ(next_out, 1000u);
}

TEST(SpscRing, OverflowIsReportedOnceAndCounted) {
  SpscRing<RxByte, 4> r;
  EXPECT_FALSE(r.take_overflow());
  for (uint8_t i = 0; i < 3; ++i) EXPECT_TRUE(r.push(RxByte{i, false}));
  EXPECT_FALSE(r.push(RxByte{3, false}));
  EXPECT_FALSE(r.push(RxByte{4, false}));
  EXPECT_EQ(r.drops(), 2u);
  EXPECT_TRUE(r.take_overflow());
  EXPECT_FALSE(r.take_overflow());  // reported once per loss
  RxByte b{};
  ASSERT_TRUE(r.pop(b));
  EXPECT_EQ(b.value, 0);  // what was stored is intact
}

TEST(SpscRing, ConcurrentProducerConsumerKeepsOrder) {
  // The ISR/main-loop contract, with two host threads: nothing lost, duplicated or reordered.
  SpscRing<uint32_t, 64> r;
  constexpr uint32_t kCount = 200000;
  std::thread producer([&] {
    for (uint32_t i = 0; i < kCount;) {
      if (r.push(i))
        ++i;
      else
        std::this_thread::yield();
    }
  });
  uint32_t expected = 0;
  while (expected < kCount) {
    uint32_t v;
    if (r.pop(v)) {
      ASSERT_EQ(v, expected);
      ++expected;
    } else {
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_TRUE(r.empty());
}

// --- clock tree and derived settings ---

TEST(ClockConfig, PllGives64MHzAndTheRegisterValue) {
  EXPECT_EQ(kPll.vco_hz(), 128'000'000u);
  EXPECT_EQ(kSysClockHz, 64'000'000u);
  // PLLSRC=HSI16 (2), PLLM=/1 (0), PLLN=8, PLLREN, PLLR=/2 (1 << 29).
  EXPECT_EQ(kPll.pllcfgr(), 0x2u | (8u << 8) | (1u << 28) | (1u << 29));
  EXPECT_EQ(flash_latency(64'000'000), 2u);
  EXPECT_EQ(flash_latency(48'000'000), 1u);
  EXPECT_EQ(flash_latency(16'000'000), 0u);
  EXPECT_EQ(kSysTickReload, 63'999u);
}

TEST(ClockConfig, BaudRateDivisors) {
  EXPECT_EQ(usart_brr(64'000'000, 4800), 13333u);
  EXPECT_EQ(usart_brr(64'000'000, 115200), 556u);  // 555.56 rounds up
  EXPECT_EQ(usart_brr(16'000'000, 115200), 139u);
  EXPECT_EQ(kMeterBrr, 13333u);
  EXPECT_EQ(kEspBrr, 556u);
  // A UART tolerates a few percent; stay far below 1 %.
  EXPECT_LT(std::abs(usart_baud_error_ppm(kPclkHz, kMeterBaud)), 100);
  EXPECT_LT(std::abs(usart_baud_error_ppm(kPclkHz, kEspBaud)), 1000);
  EXPECT_FALSE(usart_brr_valid(usart_brr(64'000'000, 300)));  // 213333 does not fit 16 bits
  EXPECT_FALSE(usart_brr_valid(usart_brr(1'000'000, 115200)));
}

TEST(ClockConfig, MeterUartIs9BitWordWithEvenParityReceiveOnly) {
  const uint32_t cr1 = usart_cr1(UartFormat::k8E1, true, false);
  EXPECT_TRUE(cr1 & usart::CR1_M0);   // M = 01: 9-bit word = 8 data bits + parity
  EXPECT_FALSE(cr1 & usart::CR1_M1);  // (M = 10 would be 7 bits: the 7E1 trap)
  EXPECT_TRUE(cr1 & usart::CR1_PCE);
  EXPECT_FALSE(cr1 & usart::CR1_PS);   // even
  EXPECT_TRUE(cr1 & usart::CR1_PEIE);  // parity errors reach the ISR
  EXPECT_TRUE(cr1 & usart::CR1_RE);
  EXPECT_TRUE(cr1 & usart::CR1_RXNEIE);
  EXPECT_FALSE(cr1 & usart::CR1_TE);
  EXPECT_TRUE(cr1 & usart::CR1_UE);

  const uint32_t esp = usart_cr1(UartFormat::k8N1, true, true);
  EXPECT_FALSE(esp & (usart::CR1_M0 | usart::CR1_M1 | usart::CR1_PCE));
  EXPECT_TRUE(esp & usart::CR1_TE);
  EXPECT_TRUE(esp & usart::CR1_RE);
}

TEST(ClockConfig, Ws2812BitTimingWithinTolerance) {
  // Datasheet: T0H 0.4 us, T1H 0.8 us, +-150 ns; 1.25 us per bit (+-600 ns).
  const double ns_per_cycle = 1e9 / kSysClockHz;
  EXPECT_NEAR(kWsT0HighCycles * ns_per_cycle, 400, 10);
  EXPECT_NEAR(kWsT1HighCycles * ns_per_cycle, 800, 10);
  EXPECT_NEAR(kWsBitCycles * ns_per_cycle, 1250, 10);
  // The loop counts the driver derives, with its overhead estimates (3 high, 9 low), give edges in spec.
  auto high_ns = [&](uint32_t cycles) {
    return (delay_loops(cycles, 3) * kDelayLoopCycles + 3) * ns_per_cycle;
  };
  EXPECT_NEAR(high_ns(kWsT0HighCycles), 400, 150);
  EXPECT_NEAR(high_ns(kWsT1HighCycles), 800, 150);
  const double bit0 = high_ns(kWsT0HighCycles) +
                      (delay_loops(kWsBitCycles - kWsT0HighCycles, 9) * kDelayLoopCycles + 9) * ns_per_cycle;
  EXPECT_NEAR(bit0, 1250, 150);
  EXPECT_EQ(delay_loops(2, 3), 1u);  // never 0: the loop would run 2^32 times
}

TEST(ClockConfig, Ws2812WordIsGrbMsbFirst) {
  EXPECT_EQ(ws2812_word(0x12, 0x34, 0x56), 0x341256u);
  EXPECT_EQ(ws2812_word(255, 0, 0), 0x00FF00u);
}

TEST(ClockConfig, WatchdogPrescalerAndReload) {
  for (uint32_t ms : {10u, 500u, 1000u, 4000u, 16000u, 32000u}) {
    const IwdgConfig c = iwdg_config(ms);
    ASSERT_LE(c.pr, 6u);
    ASSERT_LE(c.rlr, 0xFFFu);
    const double actual_ms = (c.rlr + 1.0) * (4u << c.pr) * 1000.0 / kLsiHz;
    EXPECT_NEAR(actual_ms, ms, ms * 0.01 + (4u << c.pr) * 1000.0 / kLsiHz) << ms;
  }
  EXPECT_EQ(iwdg_config(4000).pr, 3u);  // /32: 1 kHz, reload 3999
  EXPECT_EQ(iwdg_config(4000).rlr, 3999u);
  EXPECT_EQ(iwdg_config(100000).rlr, 0xFFFu);  // clamps to the longest
}

// --- flash layout ---

TEST(Layout, ReferenceLayoutOnTheG070) {
  EXPECT_EQ(kG070KB.program_start, 0x0800'0000u);
  EXPECT_EQ(kG070KB.program_size, 108u * 1024);
  EXPECT_EQ(kG070KB.devinfo_start, 0x0801'B000u);
  EXPECT_EQ(kG070KB.devinfo_size, 4096u);
  EXPECT_EQ(kG070KB.data_start, 0x0801'C000u);
  EXPECT_EQ(kG070KB.flash_end(), 0x0802'0000u);
  EXPECT_EQ(kG070KB.data_pages(), 8u);
  EXPECT_EQ(kG070KB.first_data_page(), 56u);
}

TEST(Layout, G030FitsIn64KWithTheSameShape) {
  EXPECT_EQ(kG030K8.flash_end(), 0x0801'0000u);
  EXPECT_EQ(kG030K8.program_size, 44u * 1024);
  EXPECT_EQ(kG030K8.devinfo_start, 0x0800'B000u);
  EXPECT_EQ(kG030K8.data_start, 0x0800'C000u);
  EXPECT_EQ(kG030K8.first_data_page(), 24u);
  for (const MemoryLayout* l : {&kG030K8, &kG070KB}) {
    SCOPED_TRACE(l->mcu);
    EXPECT_EQ(l->program_start + l->program_size, l->devinfo_start);  // contiguous, no overlap
    EXPECT_EQ(l->devinfo_start + l->devinfo_size, l->data_start);
    EXPECT_EQ(l->data_start + l->data_size, l->flash_end());
    EXPECT_EQ(l->devinfo_start % l->page_size, 0u);  // each area erasable on its own
    EXPECT_EQ(l->data_start % l->page_size, 0u);
    EXPECT_GE(l->data_pages(), 2u);  // the wear-levelled log rotates between pages
  }
}

struct LdRegion {
  uint32_t origin = 0, length = 0;
};

// Reads "NAME (attrs) : ORIGIN = 0x..., LENGTH = nK" from a linker script.
LdRegion ld_region(const std::string& text, const std::string& name) {
  const std::regex re(
      "\\n\\s*" + name +
      "\\s*\\([a-z]+\\)\\s*:\\s*ORIGIN\\s*=\\s*(0x[0-9A-Fa-f]+)\\s*,\\s*LENGTH\\s*=\\s*([0-9]+)K");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return {};
  return LdRegion{static_cast<uint32_t>(std::stoul(m[1].str(), nullptr, 16)),
                  static_cast<uint32_t>(std::stoul(m[2].str()) * 1024)};
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Layout, LinkerScriptsMatchTheLayoutConstants) {
  const std::pair<const char*, const MemoryLayout*> cases[] = {{"stm32g030k8.ld", &kG030K8},
                                                               {"stm32g070kb.ld", &kG070KB}};
  for (const auto& [file, l] : cases) {
    SCOPED_TRACE(file);
    const std::string text = read_file(std::string(PBFW_STM32G0_LINKER_DIR) + "/" + file);
    ASSERT_FALSE(text.empty());
    const LdRegion flash = ld_region(text, "FLASH"), devinfo = ld_region(text, "DEVINFO"),
                   data = ld_region(text, "DATA"), ram = ld_region(text, "RAM");
    EXPECT_EQ(flash.origin, l->program_start);
    EXPECT_EQ(flash.length, l->program_size);
    EXPECT_EQ(devinfo.origin, l->devinfo_start);
    EXPECT_EQ(devinfo.length, l->devinfo_size);
    EXPECT_EQ(data.origin, l->data_start);
    EXPECT_EQ(data.length, l->data_size);
    EXPECT_EQ(ram.origin, kSramBase);
    EXPECT_EQ(ram.length, l->ram_size);
  }
}

}  // namespace
