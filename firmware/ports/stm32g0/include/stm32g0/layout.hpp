// Flash/RAM layout of the socket firmware per MCU. The linker scripts (linker/*.ld) use the same numbers;
// a host test parses them and compares, so the two cannot drift apart.
//
// The port's one header for host tools: self-contained constants, no register access. The host build
// exports it as the INTERFACE target pbfw_stm32g0_layout (firmware/CMakeLists.txt); `plugbridge
// provision` links that to place the device-information page (devinfo_start) in the images it writes.
//
// Reference layout (STM32G070KB, 128 KB): program 0x08000000-0x0801AFFF (108 KB), device-information page
// 0x0801B000 (4 KB), persistent data 0x0801C000-0x0801FFFF (16 KB).
// STM32G030K8 (64 KB): the same shape moved down by 64 KB, i.e. device information and data sit at the same
// distance from the end of flash: program 0x08000000-0x0800AFFF (44 KB), device information 0x0800B000
// (4 KB), data 0x0800C000-0x0800FFFF (16 KB).
#pragma once

#include <cstdint>

namespace stm32g0 {

struct MemoryLayout {
  const char* mcu;
  uint32_t flash_size;
  uint32_t ram_size;
  uint32_t page_size;  // erase unit
  uint32_t program_start, program_size;
  uint32_t devinfo_start, devinfo_size;
  uint32_t data_start, data_size;

  constexpr uint32_t flash_end() const { return 0x0800'0000 + flash_size; }
  constexpr uint32_t data_pages() const { return data_size / page_size; }
  constexpr uint32_t first_data_page() const { return (data_start - 0x0800'0000) / page_size; }
};

inline constexpr uint32_t kDevinfoSize = 4 * 1024;
inline constexpr uint32_t kDataSize = 16 * 1024;

constexpr MemoryLayout make_layout(const char* mcu, uint32_t flash_size, uint32_t ram_size) {
  const uint32_t end = 0x0800'0000 + flash_size;
  const uint32_t data_start = end - kDataSize;
  const uint32_t devinfo_start = data_start - kDevinfoSize;
  return MemoryLayout{
      mcu,           flash_size,   ram_size,   2048,     0x0800'0000, devinfo_start - 0x0800'0000,
      devinfo_start, kDevinfoSize, data_start, kDataSize};
}

inline constexpr MemoryLayout kG070KB = make_layout("STM32G070KB", 128 * 1024, 36 * 1024);
inline constexpr MemoryLayout kG030K8 = make_layout("STM32G030K8", 64 * 1024, 8 * 1024);

static_assert(kG070KB.devinfo_start == 0x0801'B000, "reference layout: device information page");
static_assert(kG070KB.data_start == 0x0801'C000, "reference layout: persistent data");
static_assert(kG070KB.program_size == 108 * 1024);
static_assert(kG030K8.devinfo_start == 0x0800'B000 && kG030K8.data_start == 0x0800'C000);

#if defined(PBFW_MCU_G030K8)
inline constexpr const MemoryLayout& kLayout = kG030K8;
#elif defined(PBFW_MCU_G070KB)
inline constexpr const MemoryLayout& kLayout = kG070KB;
#endif

}  // namespace stm32g0
