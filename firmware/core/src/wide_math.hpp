// Minimal unsigned 128-bit arithmetic for the metering code. Portable on purpose: 32-bit
// Cortex-M0+ GCC has no __int128, and the products (24-bit register x 32-bit Kv x 32-bit Ki)
// need more than 64 bits. Private to pbfw_core.
#pragma once

#include <cstdint>

namespace pbfw::detail {

struct U128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  constexpr U128() = default;
  constexpr U128(uint64_t v) : hi(0), lo(v) {}  // NOLINT(google-explicit-constructor)
  constexpr U128(uint64_t h, uint64_t l) : hi(h), lo(l) {}

  friend constexpr bool operator==(const U128& a, const U128& b) { return a.hi == b.hi && a.lo == b.lo; }
  friend constexpr bool operator<(const U128& a, const U128& b) {
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
  }
  friend constexpr bool operator>=(const U128& a, const U128& b) { return !(a < b); }
  friend constexpr bool operator>(const U128& a, const U128& b) { return b < a; }
  friend constexpr U128 operator+(const U128& a, const U128& b) {
    const uint64_t lo = a.lo + b.lo;
    return U128(a.hi + b.hi + (lo < a.lo ? 1 : 0), lo);
  }
  friend constexpr U128 operator-(const U128& a, const U128& b) {
    return U128(a.hi - b.hi - (a.lo < b.lo ? 1 : 0), a.lo - b.lo);
  }
  constexpr U128 shl1() const { return U128((hi << 1) | (lo >> 63), lo << 1); }
  constexpr bool bit(int i) const { return i >= 64 ? ((hi >> (i - 64)) & 1u) != 0 : ((lo >> i) & 1u) != 0; }
  constexpr bool fits_u64() const { return hi == 0; }
};

// Full 64 x 64 -> 128 product via 32-bit limbs.
constexpr U128 mul64(uint64_t a, uint64_t b) {
  const uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
  const uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
  const uint64_t ll = a_lo * b_lo;
  const uint64_t lh = a_lo * b_hi;
  const uint64_t hl = a_hi * b_lo;
  const uint64_t hh = a_hi * b_hi;
  const uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
  const uint64_t lo = (mid << 32) | (ll & 0xFFFFFFFFu);
  const uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
  return U128(hi, lo);
}

// a x b where the caller guarantees the product fits in 128 bits.
constexpr U128 mul(const U128& a, uint64_t b) {
  const U128 low = mul64(a.lo, b);
  return U128(low.hi + a.hi * b, low.lo);
}

// Shift-subtract long division; d must be non-zero. Called a few times per meter frame only.
constexpr void divmod(const U128& n, const U128& d, U128& q, U128& r) {
  q = U128();
  r = U128();
  int top = 127;  // skip leading zero bits of n
  while (top >= 0 && !n.bit(top)) --top;
  for (int i = top; i >= 0; --i) {
    r = r.shl1();
    if (n.bit(i)) r.lo |= 1u;
    q = q.shl1();
    if (r >= d) {
      r = r - d;
      q.lo |= 1u;
    }
  }
}

// round(n / d) to nearest (halves up); d must be non-zero.
constexpr U128 div_round(const U128& n, const U128& d) {
  U128 q, r;
  divmod(n, d, q, r);
  // r >= d - r  <=>  2r >= d, written without overflowing r.
  if (r >= d - r) q = q + U128(1);
  return q;
}

// Saturating conversion for results that are range-checked afterwards.
constexpr uint64_t to_u64_sat(const U128& v) {
  return v.hi != 0 ? UINT64_MAX : v.lo;
}

}  // namespace pbfw::detail
