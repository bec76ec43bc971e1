#include <pbfw/persist_log.hpp>

namespace pbfw {

namespace {

// Snapshot header word, little-endian bytes: C3 len format 5A seq(4). Never all ones, never a counter update.
constexpr uint64_t kSnapshotTag = 0xC3;
constexpr uint64_t kSnapshotTag2 = 0x5A;
// Counter update word: bits 0-5 tag, 6-41 value, 42-63 check (CRC-32 of the rest and the snapshot's seq).
constexpr uint64_t kCounterTag = 0x25;
constexpr uint64_t kCounterTagMask = 0x3F;
constexpr uint64_t kCounterCheckMask = 0x3F'FFFF;

void put_word(uint8_t* out, uint64_t w) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(w >> (8 * i));
}

uint32_t crc_words(const uint64_t* words, uint32_t n) {
  uint32_t crc = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t b[8];
    put_word(b, words[i]);
    crc = crc32(b, sizeof b, crc);
  }
  return crc;
}

uint64_t check_word(const uint64_t* words, uint32_t n) {
  const uint32_t crc = crc_words(words, n);
  return uint64_t{crc} | (uint64_t{static_cast<uint32_t>(~crc)} << 32);
}

uint32_t words_for(size_t len) {
  return static_cast<uint32_t>(3 + (len + Flash::kWordSize - 1) / Flash::kWordSize);
}

bool is_snapshot_header(uint64_t w) {
  return (w & 0xFF) == kSnapshotTag && ((w >> 24) & 0xFF) == kSnapshotTag2;
}

uint64_t counter_word(uint64_t value, uint32_t seq) {
  const uint64_t low = kCounterTag | (value << 6);
  uint8_t b[12];
  put_word(b, low);
  for (int i = 0; i < 4; ++i) b[8 + i] = static_cast<uint8_t>(seq >> (8 * i));
  return low | ((uint64_t{crc32(b, sizeof b)} & kCounterCheckMask) << 42);
}

bool is_counter_update(uint64_t w, uint32_t seq, uint64_t& value) {
  if ((w & kCounterTagMask) != kCounterTag) return false;
  value = (w >> 6) & PersistLog::kMaxCounterUpdate;
  return counter_word(value, seq) == w;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t len, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB8'8320u : crc >> 1;
  }
  return ~crc;
}

struct PersistLog::PageScan {
  bool found = false;  // an intact snapshot is in the page
  uint32_t seq = 0;
  uint8_t format = 0;
  uint8_t len = 0;
  uint8_t payload[kMaxPayload] = {};
  uint64_t counter = 0;
  uint32_t end = 0;   // word after the last intact record
  uint32_t used = 0;  // word after the last one that is not erased (or not readable)
};

PersistLog::PersistLog(Flash& flash)
    : flash_(flash), pages_(flash.page_count()), words_(flash.page_size() / Flash::kWordSize) {}

uint32_t PersistLog::snapshot_words() const {
  return words_for(len_);
}

void PersistLog::scan_page(uint32_t page, PageScan& s) {
  s = PageScan{};
  uint32_t i = 0;
  while (i < words_) {
    uint64_t w = 0;
    const bool readable = flash_.read(addr(page, i), w);
    if (!readable || w != Flash::kErased) s.used = i + 1;
    if (readable && is_snapshot_header(w)) {
      const size_t len = (w >> 8) & 0xFF;
      const uint32_t n = words_for(len);
      uint64_t buf[kMaxSnapshotWords];
      bool intact = len <= kMaxPayload && i + n <= words_;
      buf[0] = w;
      for (uint32_t j = 1; intact && j < n; ++j) intact = flash_.read(addr(page, i + j), buf[j]);
      // Later snapshots in a page are newer: take the last intact one.
      if (intact && buf[n - 1] == check_word(buf, n - 1)) {
        s.found = true;
        s.seq = static_cast<uint32_t>(w >> 32);
        s.format = static_cast<uint8_t>(w >> 16);
        s.len = static_cast<uint8_t>(len);
        s.counter = buf[1];
        for (size_t k = 0; k < len; ++k) s.payload[k] = static_cast<uint8_t>(buf[2 + k / 8] >> (8 * (k % 8)));
        i += n;
        s.end = i;
        if (s.used < i) s.used = i;
        continue;
      }
    } else if (readable && s.found) {
      uint64_t value = 0;
      if (is_counter_update(w, s.seq, value)) {
        s.counter = value;
        s.end = i + 1;
      }
    }
    ++i;  // anything else (erased, torn, garbage) is skipped one word at a time
  }
}

bool PersistLog::mount() {
  mounted_ = true;
  has_state_ = false;
  base_in_page_ = false;
  page_ = kNoPage;
  stored_page_ = kNoPage;
  pos_ = 0;
  seq_ = 0;
  PageScan best;
  PageScan scan;
  uint32_t best_page = kNoPage;
  for (uint32_t p = 0; p < pages_; ++p) {
    scan_page(p, scan);
    if (scan.found && (best_page == kNoPage || scan.seq > best.seq)) {
      best = scan;
      best_page = p;
    }
  }
  if (best_page == kNoPage) return false;
  has_state_ = true;
  format_ = best.format;
  len_ = best.len;
  for (size_t k = 0; k < len_; ++k) payload_[k] = best.payload[k];
  counter_ = best.counter;
  seq_ = best.seq;
  page_ = best_page;
  stored_page_ = best_page;
  base_in_page_ = true;
  // A write cut by the power may have left words that read as erased but are not (weakly programmed):
  // never program them. Skip everything the interrupted save (with its retries) could have touched.
  const uint32_t gap = 2 * words_for(best.len) + 2;
  pos_ = best.end + gap > best.used ? best.end + gap : best.used;
  return true;
}

bool PersistLog::program_verified(uint32_t word, uint64_t value) {
  const uint32_t a = addr(page_, word);
  (void)flash_.program(a, value);  // judged by what reads back, whatever the controller said
  uint64_t back = 0;
  if (flash_.read(a, back) && back == value) return true;
  ++stats_.failed_writes;
  return false;
}

bool PersistLog::rotate() {
  for (uint32_t tries = 0; tries < pages_; ++tries) {
    page_ = page_ == kNoPage ? 0 : (page_ + 1) % pages_;
    pos_ = 0;
    if (page_ == stored_page_) continue;  // holds the newest stored state: never erased
    for (int attempt = 0; attempt < 2; ++attempt) {
      (void)flash_.erase_page(page_);
      ++stats_.erases;
      bool erased = true;
      for (uint32_t i = 0; erased && i < words_; ++i) {
        uint64_t w = 0;
        erased = flash_.read(addr(page_, i), w) && w == Flash::kErased;
      }
      if (erased) return true;
      ++stats_.failed_writes;
    }
  }
  page_ = kNoPage;  // nothing erased to write into
  return false;
}

bool PersistLog::try_snapshot() {
  base_in_page_ = false;
  const uint32_t n = snapshot_words();
  uint32_t failures_here = 0;
  uint32_t rotations = 0;
  for (;;) {
    if (page_ == kNoPage || pos_ + n > words_ || failures_here >= 2) {
      if (rotations++ >= pages_ || !rotate()) return false;
      failures_here = 0;
    }
    ++seq_;
    uint64_t buf[kMaxSnapshotWords];
    buf[0] = kSnapshotTag | (uint64_t{static_cast<uint8_t>(len_)} << 8) | (uint64_t{format_} << 16) |
             (kSnapshotTag2 << 24) | (uint64_t{seq_} << 32);
    buf[1] = counter_;
    for (uint32_t j = 2; j + 1 < n; ++j) {
      uint64_t w = 0;
      for (size_t b = 0; b < 8; ++b) {
        const size_t k = (j - 2) * 8 + b;
        if (k < len_) w |= uint64_t{payload_[k]} << (8 * b);
      }
      buf[j] = w;
    }
    buf[n - 1] = check_word(buf, n - 1);
    bool ok = true;
    for (uint32_t j = 0; ok && j < n; ++j) ok = program_verified(pos_++, buf[j]);
    if (ok) {
      base_in_page_ = true;
      stored_page_ = page_;
      ++stats_.snapshots;
      return true;
    }
    ++failures_here;  // the next attempt starts after the word that failed
  }
}

bool PersistLog::write_snapshot(uint8_t format, const uint8_t* payload, size_t len, uint64_t counter) {
  if (!mounted_) mount();
  if (len > kMaxPayload) return false;
  format_ = format;
  len_ = len;
  for (size_t k = 0; k < len; ++k) payload_[k] = payload[k];
  counter_ = counter;
  has_state_ = true;
  return try_snapshot();
}

bool PersistLog::write_counter(uint64_t counter) {
  if (!mounted_) mount();
  if (!has_state_) return false;  // nothing to attach it to: write a snapshot first
  counter_ = counter;
  if (base_in_page_ && page_ != kNoPage && counter <= kMaxCounterUpdate) {
    for (int attempt = 0; attempt < 2 && pos_ < words_; ++attempt) {
      if (program_verified(pos_++, counter_word(counter, seq_))) {
        ++stats_.counter_updates;
        return true;
      }
    }
  }
  return try_snapshot();  // page full, no snapshot here yet, value too large or the flash failed
}

}  // namespace pbfw
