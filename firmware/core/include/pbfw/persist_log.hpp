// Wear-levelled, power-loss-safe log of the socket's persistent state in NOR flash (see docs/persistence.md).
// The log appends two kinds of CRC-checked records to a ring of pages:
//  - a snapshot: an opaque payload (the encoded state) plus a 64-bit counter, 3 + ceil(len/8) double words;
//  - a counter update: one double word bound (by its check bits) to the snapshot before it in the same page.
// The state is the newest intact snapshot (highest sequence number) with the last intact counter update after
// it. A page is erased only when the log rotates into it, never while it holds the newest snapshot, so a
// power cut at any point leaves either the previous or the new state readable. No heap, no exceptions, no
// RTTI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <pbfw/flash.hpp>

namespace pbfw {

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32()); pass the previous result to continue a running CRC.
uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc = 0);

class PersistLog {
 public:
  static constexpr size_t kMaxPayload = 64;                        // bytes in a snapshot
  static constexpr uint64_t kMaxCounterUpdate = (1ull << 36) - 1;  // larger values go into a snapshot
  static constexpr uint32_t kMaxSnapshotWords = 3 + kMaxPayload / Flash::kWordSize;

  struct Stats {
    uint32_t snapshots = 0;        // written (verified)
    uint32_t counter_updates = 0;  // written (verified)
    uint32_t erases = 0;
    uint32_t failed_writes = 0;  // program/erase results that did not read back as intended
  };

  // Needs at least 2 pages of at least 2 x kMaxSnapshotWords double words.
  explicit PersistLog(Flash& flash);
  PersistLog(const PersistLog&) = delete;
  PersistLog& operator=(const PersistLog&) = delete;

  // Scans the flash. true = a snapshot was found: format(), payload(), payload_size() and counter() hold the
  // newest state. The writes call it themselves if it has not run yet.
  bool mount();
  bool mounted() const { return mounted_; }
  bool has_state() const { return has_state_; }
  // The state below is what the flash holds (false after a failed write, until one succeeds).
  bool synced() const { return base_in_page_; }
  uint8_t format() const { return format_; }
  const uint8_t* payload() const { return payload_; }
  size_t payload_size() const { return len_; }
  uint64_t counter() const { return counter_; }

  // Appends a snapshot (rotating to the next page, erased first, when this one is full). Once it returns true
  // the new state survives any power cut; false = the flash failed (the previous state stays readable).
  bool write_snapshot(uint8_t format, const uint8_t* payload, size_t len, uint64_t counter);
  // Changes only the counter: one double word when the current snapshot is in the page being written and the
  // value fits 36 bits, else a snapshot of the current payload with the new counter.
  bool write_counter(uint64_t counter);

  const Stats& stats() const { return stats_; }
  uint32_t page_count() const { return pages_; }
  uint32_t words_per_page() const { return words_; }

 private:
  struct PageScan;
  void scan_page(uint32_t page, PageScan& out);
  bool program_verified(uint32_t word, uint64_t value);
  bool rotate();
  bool try_snapshot();
  uint32_t addr(uint32_t page, uint32_t word) const { return (page * words_ + word) * Flash::kWordSize; }
  uint32_t snapshot_words() const;

  Flash& flash_;
  uint32_t pages_;
  uint32_t words_;  // double words per page
  bool mounted_ = false;
  bool has_state_ = false;
  // The state the caller asked to keep (what a successful write stored).
  uint8_t format_ = 0;
  uint8_t payload_[kMaxPayload] = {};
  size_t len_ = 0;
  uint64_t counter_ = 0;
  uint32_t seq_ = 0;  // sequence number of the newest snapshot written or found
  // Where the next record goes; kNoPage = nothing usable yet (the next write rotates into a fresh page).
  static constexpr uint32_t kNoPage = UINT32_MAX;
  uint32_t page_ = kNoPage;
  uint32_t pos_ = 0;
  uint32_t stored_page_ = kNoPage;  // page of the newest snapshot known intact: rotation never erases it
  // Counter updates may only follow an intact snapshot of the current payload in the current page.
  bool base_in_page_ = false;
  Stats stats_;
};

}  // namespace pbfw
