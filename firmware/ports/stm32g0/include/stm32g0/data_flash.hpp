// pbfw::Flash (the persistence log's flash HAL) on the STM32G0's persistent-data pages (layout.hpp).
#pragma once

#include <pbfw/flash.hpp>
#include <stm32g0/drivers.hpp>
#include <stm32g0/layout.hpp>

namespace stm32g0 {

class DataFlash final : public pbfw::Flash {
 public:
  uint32_t page_size() const override { return kLayout.page_size; }
  uint32_t page_count() const override { return kLayout.data_pages(); }
  bool read(uint32_t offset, uint64_t& value) override {
    return offset + kWordSize <= kLayout.data_size &&
           flash_read_double_word(kLayout.data_start + offset, value);
  }
  bool program(uint32_t offset, uint64_t value) override {
    return flash_program_double_word(kLayout.data_start + offset, value) == FlashStatus::Ok;
  }
  bool erase_page(uint32_t page) override {
    return page < page_count() && flash_erase_page(kLayout.first_data_page() + page) == FlashStatus::Ok;
  }
};

}  // namespace stm32g0
