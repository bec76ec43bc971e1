// LAN frame codec: the input is a byte stream as a TLS session delivers it, decoded frame by frame
// the way both ends do (the caller keeps unconsumed bytes). Checks, besides memory safety:
//  - decode always makes progress on a complete frame and never consumes more than it was given;
//  - NeedMore comes only for less than a maximal frame, and a frame that was decoded (or rejected
//    as a whole) is NeedMore without its last byte;
//  - a decoded message encodes again, to the same bytes (a legacy 37-byte Reading to the current
//    layout), and that encoding decodes to a message that encodes identically.
#include <cstring>
#include <pbfw/proto.hpp>

#include "fuzz_check.hpp"

namespace proto = pbfw::proto;

namespace {

constexpr size_t kLegacyReadingFrame = proto::kHeaderSize + 37 + proto::kCrcSize;

void check_round_trip(const proto::Message& m, const uint8_t* frame, size_t frame_len) {
  uint8_t first[proto::kMaxFrame];
  const size_t n1 = proto::encode(m, first, sizeof first);
  PB_FUZZ_CHECK(n1 > 0);
  if (!(m.type == proto::MsgType::Reading && frame_len == kLegacyReadingFrame)) {
    PB_FUZZ_CHECK(n1 == frame_len && std::memcmp(first, frame, n1) == 0);
  }
  proto::Message again{};
  size_t consumed = 0;
  PB_FUZZ_CHECK(proto::decode(first, n1, again, consumed) == proto::DecodeStatus::Ok);
  PB_FUZZ_CHECK(consumed == n1 && again.type == m.type);
  uint8_t second[proto::kMaxFrame];
  const size_t n2 = proto::encode(again, second, sizeof second);
  PB_FUZZ_CHECK(n2 == n1 && std::memcmp(first, second, n1) == 0);
  // A buffer one byte short is refused, never overrun.
  PB_FUZZ_CHECK(proto::encode(m, second, n1 - 1) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const uint8_t* buf = data + off;
    const size_t len = size - off;
    proto::Message m{};
    size_t consumed = 0;
    const proto::DecodeStatus st = proto::decode(buf, len, m, consumed);
    PB_FUZZ_CHECK(proto::to_string(st) != nullptr);
    if (st == proto::DecodeStatus::NeedMore) {
      PB_FUZZ_CHECK(consumed == 0 && len < proto::kMaxFrame);
      break;
    }
    PB_FUZZ_CHECK(consumed >= 1 && consumed <= len);
    const bool whole_frame = st == proto::DecodeStatus::Ok || st == proto::DecodeStatus::BadCrc ||
                             st == proto::DecodeStatus::UnknownType || st == proto::DecodeStatus::Malformed;
    if (whole_frame) {
      PB_FUZZ_CHECK(consumed >= proto::kHeaderSize + proto::kCrcSize && consumed <= proto::kMaxFrame);
      proto::Message partial{};
      size_t partial_consumed = 1;
      PB_FUZZ_CHECK(proto::decode(buf, consumed - 1, partial, partial_consumed) ==
                    proto::DecodeStatus::NeedMore);
      PB_FUZZ_CHECK(partial_consumed == 0);
    } else {
      PB_FUZZ_CHECK(consumed == 1);  // header errors skip one byte to resynchronise
    }
    if (st == proto::DecodeStatus::Ok) {
      PB_FUZZ_CHECK(proto::to_string(m.type) != nullptr);
      check_round_trip(m, buf, consumed);
    }
    off += consumed;
  }
  return 0;
}
