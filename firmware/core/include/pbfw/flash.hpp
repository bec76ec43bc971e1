// NOR flash HAL for the persistence log (pbfw/persist_log.hpp). Implemented by each port: the STM32G0 flash
// controller on the MCU, a simulated flash in host tests. No heap, no exceptions, no RTTI.
#pragma once

#include <cstdint>

namespace pbfw {

// The flash region given to the log: page_count() pages of page_size() bytes, addressed by byte offset from
// the region's start. Modelled on the STM32G0: erasing a page sets it to all ones; a 64-bit double word
// (8-aligned) can be programmed once after an erase; a program or erase interrupted by a power cut leaves
// undefined contents, which may even fail the ECC check when read.
class Flash {
 public:
  static constexpr uint64_t kErased = ~uint64_t{0};
  static constexpr uint32_t kWordSize = 8;  // bytes per double word

  virtual uint32_t page_size() const = 0;  // bytes, a multiple of kWordSize
  virtual uint32_t page_count() const = 0;
  // Reads the double word at `offset` (8-aligned), little-endian. false = unreadable (uncorrectable ECC
  // error): the log treats the word as garbage. On the STM32G0 a double ECC error in the data pages raises
  // an NMI; the port's NMI handler must clear it and make this return false instead of faulting.
  virtual bool read(uint32_t offset, uint64_t& value) = 0;
  // Programs one erased double word. false = the controller reported an error (the log re-reads anyway).
  virtual bool program(uint32_t offset, uint64_t value) = 0;
  // Erases page `page` (0 .. page_count()-1). false = the controller reported an error.
  virtual bool erase_page(uint32_t page) = 0;

 protected:
  ~Flash() = default;
};

}  // namespace pbfw
