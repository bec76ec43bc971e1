// recover_file: a salvage copy of a damaged database, with nothing but SQLite's own reads (Debian's
// libsqlite3 is built without the sqlite_dbpage table that the sqlite3 program's .recover needs).
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "plugbridge/store/store.hpp"

namespace pb::store {

namespace {

struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
};
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

std::string quote_id(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw StoreError(what + ": " + sqlite3_errmsg(db), sqlite3_extended_errcode(db));
}

void exec(sqlite3* db, const std::string& sql, const std::string& what) {
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail(db, what);
}

struct SchemaItem {
  std::string type, name, table, sql;
};

// Inserts the current row of `from` into dst with `insert` (same column count); counts it if new.
void insert_row(sqlite3_stmt* from, sqlite3* dst, sqlite3_stmt* insert, int64_t& rows) {
  const int n = sqlite3_column_count(from);
  for (int i = 0; i < n; ++i) sqlite3_bind_value(insert, i + 1, sqlite3_column_value(from, i));
  const int rc = sqlite3_step(insert);
  sqlite3_reset(insert);
  sqlite3_clear_bindings(insert);
  if (rc != SQLITE_DONE) fail(dst, "write the recovered row");
  if (sqlite3_changes(dst) > 0) ++rows;
}

// Copies the rows `select` returns into dst until the scan ends or hits damage; false on damage.
bool copy_rows(sqlite3* src, sqlite3* dst, const std::string& select, sqlite3_stmt* insert, int64_t& rows) {
  Stmt q;
  if (sqlite3_prepare_v2(src, select.c_str(), -1, &q.s, nullptr) != SQLITE_OK) return false;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) insert_row(q.s, dst, insert, rows);
  return rc == SQLITE_DONE;
}

// Copies the row a prepared lookup finds (if it can be read); resets the lookup.
void copy_found(sqlite3_stmt* lookup, sqlite3* dst, sqlite3_stmt* insert, int64_t& rows) {
  if (sqlite3_step(lookup) == SQLITE_ROW) insert_row(lookup, dst, insert, rows);
  sqlite3_reset(lookup);
  sqlite3_clear_bindings(lookup);
}

}  // namespace

RecoverReport recover_file(const std::string& src_path, const std::string& dst_path) {
  if (std::filesystem::exists(dst_path)) throw StoreError(dst_path + " exists already");
  Db src, dst;
  if (sqlite3_open_v2(src_path.c_str(), &src.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
    fail(src.db, "open " + src_path);
  std::vector<SchemaItem> items;
  {
    Stmt q;
    if (sqlite3_prepare_v2(src.db,
                           "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
                           -1, &q.s, nullptr) != SQLITE_OK)
      fail(src.db, "read the schema of " + src_path);
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
      items.push_back({reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0)),
                       reinterpret_cast<const char*>(sqlite3_column_text(q.s, 1)),
                       reinterpret_cast<const char*>(sqlite3_column_text(q.s, 2)),
                       reinterpret_cast<const char*>(sqlite3_column_text(q.s, 3))});
    }
    if (rc != SQLITE_DONE) fail(src.db, "read the schema of " + src_path);
  }
  int user_version = 0;
  {
    Stmt q;
    if (sqlite3_prepare_v2(src.db, "PRAGMA user_version", -1, &q.s, nullptr) == SQLITE_OK &&
        sqlite3_step(q.s) == SQLITE_ROW)
      user_version = sqlite3_column_int(q.s, 0);
  }

  if (sqlite3_open_v2(dst_path.c_str(), &dst.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK)
    fail(dst.db, "create " + dst_path);
  exec(dst.db, "BEGIN", "begin");
  for (const auto& it : items)
    if (it.type == "table") exec(dst.db, it.sql, "create table " + it.name);

  RecoverReport report;
  for (const auto& it : items) {
    if (it.type != "table") continue;
    RecoverReport::Table t{it.name, 0, false};
    // Key order: the primary key of a WITHOUT ROWID table, else the rowid.
    std::vector<std::string> cols;
    std::vector<std::pair<int, std::string>> pk;
    {
      Stmt q;
      const std::string sql = "PRAGMA table_info(" + quote_id(it.name) + ")";
      if (sqlite3_prepare_v2(src.db, sql.c_str(), -1, &q.s, nullptr) != SQLITE_OK) fail(src.db, "table_info");
      while (sqlite3_step(q.s) == SQLITE_ROW) {
        const std::string c = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 1));
        cols.push_back(quote_id(c));
        if (const int k = sqlite3_column_int(q.s, 5); k > 0) pk.emplace_back(k, quote_id(c));
      }
    }
    std::sort(pk.begin(), pk.end());
    const bool without_rowid = it.sql.find("WITHOUT ROWID") != std::string::npos ||
                               it.sql.find("without rowid") != std::string::npos;
    std::string list, marks, asc, desc;
    for (size_t i = 0; i < cols.size(); ++i) {
      list += (i ? ", " : "") + cols[i];
      marks += i ? ",?" : "?";
    }
    if (without_rowid) {
      for (size_t i = 0; i < pk.size(); ++i) {
        asc += (i ? ", " : "") + pk[i].second;
        desc += (i ? ", " : "") + pk[i].second + " DESC";
      }
    } else {
      list = "rowid, " + list;
      marks = "?," + marks;
      asc = "rowid";
      desc = "rowid DESC";
    }
    Stmt ins;
    const std::string insert_sql =
        "INSERT OR IGNORE INTO " + quote_id(it.name) + " (" + list + ") VALUES (" + marks + ")";
    if (sqlite3_prepare_v2(dst.db, insert_sql.c_str(), -1, &ins.s, nullptr) != SQLITE_OK)
      fail(dst.db, insert_sql);
    const std::string read_all = "SELECT " + list + " FROM " + quote_id(it.name);
    const std::string select = read_all + " ORDER BY ";
    if (!copy_rows(src.db, dst.db, select + asc, ins.s, t.rows)) {
      t.damaged = true;
      copy_rows(src.db, dst.db, select + desc, ins.s, t.rows);  // the other end, up to the damage
      // The rows between: their keys from each index of the table (a separate b-tree), each row
      // then looked up on its own; only the rows on damaged pages fail.
      std::vector<std::string> key =
          without_rowid ? std::vector<std::string>{} : std::vector<std::string>{"rowid"};
      if (without_rowid)
        for (const auto& [k, c] : pk) key.push_back(c);
      std::string key_list, where;
      for (size_t i = 0; i < key.size(); ++i) {
        key_list += (i ? ", " : "") + key[i];
        where += (i ? " AND " : "") + key[i] + " = ?" + std::to_string(i + 1);
      }
      Stmt lookup;
      const std::string lookup_sql = read_all + " WHERE " + where;
      if (sqlite3_prepare_v2(src.db, lookup_sql.c_str(), -1, &lookup.s, nullptr) == SQLITE_OK) {
        for (const auto& idx : items) {
          if (idx.type != "index" || idx.table != it.name) continue;
          Stmt keys;
          const std::string keys_sql =
              "SELECT " + key_list + " FROM " + quote_id(it.name) + " INDEXED BY " + quote_id(idx.name);
          if (sqlite3_prepare_v2(src.db, keys_sql.c_str(), -1, &keys.s, nullptr) != SQLITE_OK) continue;
          while (sqlite3_step(keys.s) == SQLITE_ROW) {
            for (int i = 0; i < static_cast<int>(key.size()); ++i)
              sqlite3_bind_value(lookup.s, i + 1, sqlite3_column_value(keys.s, i));
            copy_found(lookup.s, dst.db, ins.s, t.rows);
          }
        }
      }
    }
    report.tables.push_back(t);
  }
  for (const auto& it : items)
    if (it.type == "index" || it.type == "view") exec(dst.db, it.sql, "create " + it.type + " " + it.name);
  for (const auto& it : items)
    if (it.type == "trigger") exec(dst.db, it.sql, "create trigger " + it.name);
  exec(dst.db, "PRAGMA user_version = " + std::to_string(user_version), "set user_version");
  exec(dst.db, "COMMIT", "commit");
  return report;
}

}  // namespace pb::store
