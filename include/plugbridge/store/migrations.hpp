// Schema migrations, embedded at build time from migrations/NNNN_name.sql (see embed_migrations.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace pb::store {

struct Migration {
  int number;             // NNNN of the file name; the schema version after applying it
  std::string_view name;  // file name, for messages
  std::string_view sql;   // may hold several statements
};

// All migrations of this build, ordered by number, numbered 1..N without gaps.
const std::vector<Migration>& embedded_migrations();

}  // namespace pb::store
