// db_stats: sizes per table (dbstat virtual table) and per socket, for `plugbridge db stats`.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "plugbridge/store/store.hpp"

namespace pb::store {

namespace {

struct Conn {
  sqlite3* db = nullptr;
  ~Conn() { sqlite3_close(db); }
};

// Runs sql, calling row(stmt) for each result row.
template <class Row>
void each(sqlite3* db, const std::string& sql, Row row) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
    throw StoreError(sql + ": " + sqlite3_errmsg(db), sqlite3_extended_errcode(db));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
  const std::string err = sqlite3_errmsg(db);
  const int code = sqlite3_extended_errcode(db);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) throw StoreError(sql + ": " + err, code);
}

std::string text(sqlite3_stmt* s, int i) {
  const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return t != nullptr ? t : "";
}

}  // namespace

DbStats db_stats(const std::string& path) {
  DbStats out;
  std::error_code ec;
  out.file_bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (ec) throw StoreError("no database at " + path + ": " + ec.message());
  const auto wal = std::filesystem::file_size(path + "-wal", ec);
  out.wal_bytes = ec ? 0 : static_cast<int64_t>(wal);

  Conn c;
  if (sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
    throw StoreError("cannot open " + path + ": " + sqlite3_errmsg(c.db));
  sqlite3_busy_timeout(c.db, 5000);
  each(c.db, "PRAGMA user_version", [&](sqlite3_stmt* s) { out.schema_version = sqlite3_column_int(s, 0); });
  each(c.db, "SELECT freelist_count * page_size FROM pragma_freelist_count(), pragma_page_size()",
       [&](sqlite3_stmt* s) { out.free_pages_bytes = sqlite3_column_int64(s, 0); });
  // Every b-tree's pages, indexes counted with their table.
  std::map<std::string, std::string> owner;
  each(c.db, "SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')",
       [&](sqlite3_stmt* s) { owner[text(s, 0)] = text(s, 1); });
  std::map<std::string, int64_t> bytes;
  each(c.db, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name", [&](sqlite3_stmt* s) {
    const std::string name = text(s, 0);
    const auto it = owner.find(name);
    bytes[it != owner.end() ? it->second : name] += sqlite3_column_int64(s, 1);
  });
  for (const auto& [name, b] : bytes) {
    DbStats::Table t{name, b, -1};
    if (name.rfind("sqlite_", 0) != 0) {
      std::string quoted = "\"";
      for (char ch : name) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      each(c.db, "SELECT count(*) FROM " + quoted + "\"",
           [&](sqlite3_stmt* s) { t.rows = sqlite3_column_int64(s, 0); });
    }
    out.tables.push_back(t);
  }
  std::sort(out.tables.begin(), out.tables.end(),
            [](const DbStats::Table& a, const DbStats::Table& b) { return a.bytes > b.bytes; });

  std::map<std::string, DbStats::Socket> sockets;
  // Raw history: samples (schema 5 on), raw readings before.
  const char* raw = owner.count("samples")
                        ? "SELECT k.cid, count(*), min(s.start_ms), max(s.start_ms) FROM samples s "
                          "JOIN sockets k ON k.id = s.socket GROUP BY k.cid"
                        : "SELECT cid, count(*), min(ts_ms), max(ts_ms) FROM readings GROUP BY cid";
  if (owner.count("samples") || owner.count("readings"))
    each(c.db, raw, [&](sqlite3_stmt* s) {
      auto& k = sockets[text(s, 0)];
      k.cid = text(s, 0);
      k.samples = sqlite3_column_int64(s, 1);
      k.first_ms = sqlite3_column_int64(s, 2);
      k.last_ms = sqlite3_column_int64(s, 3);
    });
  if (owner.count("energy_buckets"))
    each(c.db, "SELECT cid, count(*) FROM energy_buckets GROUP BY cid", [&](sqlite3_stmt* s) {
      auto& k = sockets[text(s, 0)];
      k.cid = text(s, 0);
      k.buckets = sqlite3_column_int64(s, 1);
    });
  for (auto& [cid, k] : sockets) out.sockets.push_back(k);
  return out;
}

}  // namespace pb::store
