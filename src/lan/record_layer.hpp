// TLS 1.2 record protection for an established session, run on the session's keys alone.
//
// OpenSSL's SSL object stays large for the whole life of a connection (about 7.6 KB: its record
// layer has room for 32 pipelined records, plus the session, the handshake's leftovers and two
// cipher contexts). A socket session idles for hours between small frames, so once the handshake is
// done the server keeps only what RFC 5246 §6.1 calls the connection state: the negotiated suite's
// keys and a sequence number per direction (under 200 bytes), and frees the SSL.
//
// Suites (pbfw::proto::kPskCipherList):
// - ECDHE-PSK-CHACHA20-POLY1305: AEAD records, RFC 7905.
// - ECDHE-PSK-AES128-CBC-SHA256 with encrypt-then-MAC (RFC 7366): the MAC covers the IV and the
//   ciphertext and is checked before anything is decrypted.
// CBC with MAC-then-encrypt is not taken over: checking its padding safely needs constant-time code
// (the Lucky Thirteen attack), which OpenSSL has; such a session keeps its SSL.
//
// The switch happens right after the handshake: in TLS 1.2 the Finished messages are the first
// records under the new keys (sequence number 0 each way), so both directions continue at 1. No
// renegotiation, resumption or tickets are enabled, so no later handshake can change the keys.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct ssl_st;  // OpenSSL's SSL

namespace pb::lan::detail {

enum class ContentType : uint8_t { ChangeCipherSpec = 20, Alert = 21, Handshake = 22, ApplicationData = 23 };

// Alert descriptions this layer sends (RFC 5246 §7.2).
enum class AlertDescription : uint8_t {
  CloseNotify = 0,
  UnexpectedMessage = 10,
  BadRecordMac = 20,
  RecordOverflow = 22,
  DecodeError = 50,
  NoRenegotiation = 100,
};

class RecordProtection {
 public:
  enum class Role { Server, Client };
  enum class Suite : uint8_t { ChaCha20Poly1305, Aes128CbcSha256 };

  static constexpr size_t kHeader = 5;
  static constexpr size_t kMaxPlaintext = 16384;  // 2^14, RFC 5246 §6.2.1
  // The largest record body either suite produces for kMaxPlaintext bytes, with room to spare;
  // a longer one is a record_overflow.
  static constexpr size_t kMaxBody = kMaxPlaintext + 256;
  static constexpr size_t kMaxRecord = kHeader + kMaxBody;

  // The connection state of `ssl`, whose handshake has just completed and which has read nothing
  // beyond it. `encrypt_then_mac`: whether the peer's hello offered encrypt-then-MAC (it is in use
  // exactly then for the CBC suite). Returns nullptr, with the reason in `why`, when the session
  // cannot be taken over: the SSL must then be kept and used as before.
  static std::unique_ptr<RecordProtection> take_over(ssl_st* ssl, Role role, bool encrypt_then_mac,
                                                     std::string& why);

  RecordProtection(const RecordProtection&) = delete;
  RecordProtection& operator=(const RecordProtection&) = delete;
  ~RecordProtection();

  Suite suite() const { return suite_; }

  // Appends records of `type` carrying data[0, n) to `out`, kMaxPlaintext bytes at most each.
  // False only if the cipher failed or the sequence numbers ran out (the connection must end).
  bool seal(ContentType type, const uint8_t* data, size_t n, std::vector<uint8_t>& out);

  enum class Framing { NeedMore, Complete, Bad };
  // Looks at the header at p[0, avail): Complete with the record's whole length (header included)
  // once avail holds it, Bad (with the alert to send) for a header no peer of ours may send.
  static Framing frame(const uint8_t* p, size_t avail, size_t& record_len, AlertDescription& alert);

  // Opens the complete record at rec[0, len) (as frame() found it) in place: its content is then at
  // rec[offset, offset + n). False if it is not authentic or not well-formed (send bad_record_mac).
  bool open(uint8_t* rec, size_t len, ContentType& type, size_t& offset, size_t& n);

 private:
  struct Direction {
    std::array<uint8_t, 32> mac_key{};
    std::array<uint8_t, 32> key{};
    std::array<uint8_t, 12> iv{};  // ChaCha20-Poly1305's fixed nonce part
    uint64_t seq = 1;              // the Finished message used 0
  };
  explicit RecordProtection(Suite s) : suite_(s) {}
  bool seal_one(ContentType type, const uint8_t* data, size_t n, std::vector<uint8_t>& out);

  Suite suite_;
  Direction read_;
  Direction write_;
};

}  // namespace pb::lan::detail
