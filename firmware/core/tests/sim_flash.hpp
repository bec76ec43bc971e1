// A simulated STM32G0-like NOR flash for host tests of the persistence log. It can lose power during the
// k-th program or erase, leaving what a real interrupted operation may leave: a double word with only some
// bits programmed, one that reads as erased but is weak (programming it again gives garbage), one that fails
// its ECC check, or a page with any mix of old, erased, weak, garbage and unreadable words.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <pbfw/flash.hpp>
#include <random>
#include <set>
#include <vector>

namespace pbfw::test {

class SimFlash final : public Flash {
 public:
  enum class Cell : uint8_t { Ok, Weak, Unreadable };

  SimFlash(uint32_t pages, uint32_t page_size, uint32_t seed = 1)
      : pages_(pages),
        page_size_(page_size),
        words_(pages * page_size / kWordSize, kErased),
        cells_(words_.size(), Cell::Ok),
        erase_counts_(pages, 0),
        rng_(seed) {}

  uint32_t page_size() const override { return page_size_; }
  uint32_t page_count() const override { return pages_; }

  bool read(uint32_t offset, uint64_t& value) override {
    const size_t i = index(offset);
    if (!powered_ || cells_[i] == Cell::Unreadable) return false;
    value = words_[i];
    return true;
  }

  bool program(uint32_t offset, uint64_t value) override {
    const size_t i = index(offset);
    if (!powered_) return false;
    if (cut_now()) {
      torn_program(i, value);
      return false;
    }
    ++programs_;
    if (bad_words_.count(i) != 0) {  // a worn-out cell: programs, but reads back wrong
      words_[i] = value ^ 0x10;
      return true;
    }
    if (cells_[i] == Cell::Unreadable || words_[i] != kErased) {  // PROGERR: not erased
      ++programs_on_dirty_;
      return false;
    }
    if (cells_[i] == Cell::Weak) {  // looked erased, was not: the result is garbage
      ++programs_on_weak_;
      words_[i] = value ^ (rng_() | 1);
      cells_[i] = rng_() % 2 ? Cell::Unreadable : Cell::Ok;
      return true;
    }
    words_[i] = value;
    return true;
  }

  bool erase_page(uint32_t page) override {
    EXPECT_LT(page, pages_);
    if (!powered_ || page >= pages_) return false;
    const size_t first = size_t{page} * page_size_ / kWordSize, n = page_size_ / kWordSize;
    if (cut_now()) {
      // Anything from "barely started" to "nearly done".
      const uint32_t keep_percent = rng_() % 101;
      for (size_t i = first; i < first + n; ++i) {
        if (rng_() % 100 < keep_percent) continue;
        switch (rng_() % 4) {
          case 0:
            set(i, kErased, Cell::Ok);
            break;
          case 1:
            set(i, kErased, Cell::Weak);
            break;
          case 2:
            set(i, rng64(), Cell::Ok);
            break;
          default:
            set(i, rng64(), Cell::Unreadable);
            break;
        }
      }
      return false;
    }
    ++erase_counts_[page];
    for (size_t i = first; i < first + n; ++i) set(i, kErased, Cell::Ok);
    return true;
  }

  // The `ops_from_now`-th program/erase from now (0 = the next one) is cut short and the power stays off.
  void schedule_cut(uint64_t ops_from_now) { cut_at_ = ops_ + ops_from_now; }
  void power_on() {
    powered_ = true;
    cut_at_ = UINT64_MAX;
  }
  bool powered() const { return powered_; }

  uint64_t ops() const { return ops_; }  // program + erase calls, including the cut one
  uint64_t programs() const { return programs_; }
  uint64_t programs_on_dirty() const { return programs_on_dirty_; }
  uint64_t programs_on_weak() const { return programs_on_weak_; }
  const std::vector<uint32_t>& erase_counts() const { return erase_counts_; }
  uint64_t& word(size_t i) { return words_[i]; }
  Cell& cell(size_t i) { return cells_[i]; }
  size_t word_count() const { return words_.size(); }
  void add_bad_word(size_t i) { bad_words_.insert(i); }
  void fill_random() {
    for (size_t i = 0; i < words_.size(); ++i) set(i, rng64(), Cell::Ok);
  }

 private:
  size_t index(uint32_t offset) const {
    EXPECT_EQ(offset % kWordSize, 0u);
    EXPECT_LT(offset / kWordSize, words_.size());
    return offset / kWordSize < words_.size() ? offset / kWordSize : 0;
  }
  bool cut_now() {
    if (ops_++ != cut_at_) return false;
    powered_ = false;
    return true;
  }
  void torn_program(size_t i, uint64_t value) {
    if (cells_[i] != Cell::Ok || words_[i] != kErased) return;  // would have been refused anyway
    switch (rng_() % 5) {
      case 0:
        words_[i] = value;
        break;  // finished just in time
      case 1:
        cells_[i] = Cell::Weak;
        break;  // still reads erased
      case 2:   // some bits programmed
        words_[i] = value | rng64();
        if (words_[i] == kErased) cells_[i] = Cell::Weak;
        break;
      case 3:
        cells_[i] = Cell::Unreadable;
        break;  // ECC fails
      default:
        words_[i] = rng64();
        break;  // anything
    }
  }
  void set(size_t i, uint64_t v, Cell c) {
    words_[i] = v;
    cells_[i] = c;
  }
  uint64_t rng64() { return (uint64_t{rng_()} << 32) ^ rng_(); }

  uint32_t pages_, page_size_;
  std::vector<uint64_t> words_;
  std::vector<Cell> cells_;
  std::vector<uint32_t> erase_counts_;
  std::set<size_t> bad_words_;
  std::mt19937 rng_;
  bool powered_ = true;
  uint64_t cut_at_ = UINT64_MAX;
  uint64_t ops_ = 0, programs_ = 0, programs_on_dirty_ = 0, programs_on_weak_ = 0;
};

}  // namespace pbfw::test
