// Single-producer single-consumer ring buffer between an interrupt handler (producer) and the main loop
// (consumer). Lock-free: each side writes only its own index; on Cortex-M0+ 32-bit loads/stores are atomic
// and the acquire/release orders become plain accesses plus barriers. N must be a power of two; N - 1
// elements fit. When full, push() fails and the loss is counted (see take_overflow()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace stm32g0 {

template <typename T, uint32_t N>
class SpscRing {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "N must be a power of two");

 public:
  // Producer side (ISR).
  bool push(T v) {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    const uint32_t next = (h + 1) & (N - 1);
    if (next == tail_.load(std::memory_order_acquire)) {
      // Only the producer writes drops_, so a plain load + store is enough (no read-modify-write, which
      // the M0+ cannot do atomically without disabling interrupts).
      drops_.store(drops_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      return false;
    }
    buf_[h] = v;
    head_.store(next, std::memory_order_release);
    return true;
  }

  // Consumer side (main loop).
  bool pop(T& out) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return false;
    out = buf_[t];
    tail_.store((t + 1) & (N - 1), std::memory_order_release);
    return true;
  }
  // True once after the producer dropped data because the buffer was full (since the last call).
  bool take_overflow() {
    const uint32_t d = drops_.load(std::memory_order_acquire);
    const bool lost = d != seen_drops_;
    seen_drops_ = d;
    return lost;
  }
  uint32_t drops() const { return drops_.load(std::memory_order_acquire); }

  bool empty() const {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  uint32_t size() const {
    return (head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire)) & (N - 1);
  }
  static constexpr uint32_t capacity() { return N - 1; }

 private:
  T buf_[N] = {};
  std::atomic<uint32_t> head_{0};
  std::atomic<uint32_t> tail_{0};
  std::atomic<uint32_t> drops_{0};
  uint32_t seen_drops_ = 0;  // consumer only
};

// A received UART byte with its line-error flag (parity, framing, noise or overrun).
struct RxByte {
  uint8_t value;
  bool error;
};

}  // namespace stm32g0
