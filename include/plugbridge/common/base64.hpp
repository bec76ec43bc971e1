// Strict standard base64 (RFC 4648 with padding): what platform keys are written in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pb {

// The bytes `text` stands for; none when it is not canonical base64: a length not a multiple of 4,
// a character outside the alphabet, '=' before the end, whitespace, or bits set after the last
// byte. `why` (when given) says which, without quoting the text: it may be a secret.
std::optional<std::string> base64_decode(std::string_view text, std::string* why = nullptr);

}  // namespace pb
