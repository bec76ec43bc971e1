#include "db.hpp"

#include <sqlite3.h>

#include <stdexcept>

namespace pb::cli {

namespace {

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  void bind(int i, int64_t v) { sqlite3_bind_int64(st_, i, v); }
  void bind(int i, const std::string& v) { sqlite3_bind_text(st_, i, v.c_str(), -1, SQLITE_TRANSIENT); }
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db_));
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  std::string text(int c) const {
    auto p = sqlite3_column_text(st_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

}  // namespace

ReadDb::ReadDb(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
}

ReadDb::~ReadDb() {
  for (sqlite3_stmt* st : rollup_stmt_) sqlite3_finalize(st);
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db_);
}

void ReadDb::begin_snapshot() {
  // A deferred BEGIN reads nothing yet; the first read fixes the snapshot.
  char* err = nullptr;
  if (sqlite3_exec(db_, "BEGIN; SELECT count(*) FROM sqlite_schema", nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw std::runtime_error("query failed: " + msg);
  }
}

void ReadDb::each_row(Rollup table, const std::string& cid, int64_t from_ms, int64_t to_ms,
                      const std::function<void(const store::BucketRow&)>& fn, bool energy_only) {
  sqlite3_stmt*& st = rollup_stmt_[(table == Rollup::kHour ? 1 : 0) + (energy_only ? 2 : 0)];
  if (st == nullptr) {
    const std::string sql =
        std::string(energy_only
                        ? "SELECT start_ms, energy_mwh FROM "
                        : "SELECT start_ms, energy_mwh, samples, power_sum_mw, coalesce(power_min_mw, 0), "
                          "coalesce(power_max_mw, 0), coalesce(voltage_min_mv, 0), "
                          "coalesce(voltage_max_mv, 0), coalesce(current_max_ua, 0) FROM ") +
        (table == Rollup::kHour ? "energy_hours" : "energy_buckets") +
        " WHERE cid = ?1 AND start_ms >= ?2 AND start_ms < ?3 ORDER BY start_ms";
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db_));
  }
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, cid.c_str(), static_cast<int>(cid.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, from_ms);
  sqlite3_bind_int64(st, 3, to_ms);
  store::BucketRow b;
  b.cid = cid;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    b.start_ms = sqlite3_column_int64(st, 0);
    b.energy_mwh = sqlite3_column_int64(st, 1);
    if (energy_only) {
      fn(b);
      continue;
    }
    b.samples = sqlite3_column_int64(st, 2);
    b.power_sum_mw = sqlite3_column_int64(st, 3);
    b.power_min_mw = sqlite3_column_int64(st, 4);
    b.power_max_mw = sqlite3_column_int64(st, 5);
    b.voltage_min_mv = sqlite3_column_int64(st, 6);
    b.voltage_max_mv = sqlite3_column_int64(st, 7);
    b.current_max_ua = sqlite3_column_int64(st, 8);
    fn(b);
  }
  if (rc != SQLITE_DONE) throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db_));
  sqlite3_reset(st);  // ends the read transaction of this scan, unless a snapshot holds one
}

void ReadDb::each_bucket(const std::string& cid, int64_t from_ms, int64_t to_ms,
                         const std::function<void(const store::BucketRow&)>& fn) {
  static const char* kCols =
      "SELECT cid, start_ms, energy_mwh, samples, power_sum_mw, coalesce(power_min_mw, 0), "
      "coalesce(power_max_mw, 0), coalesce(voltage_min_mv, 0), coalesce(voltage_max_mv, 0), "
      "coalesce(current_max_ua, 0) FROM energy_buckets ";
  std::string sql =
      std::string(kCols) + (cid.empty() ? "WHERE start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms"
                                        : "WHERE cid = ?3 AND start_ms >= ?1 AND start_ms < ?2 "
                                          "ORDER BY start_ms");
  Stmt st(db_, sql.c_str());
  st.bind(1, from_ms);
  st.bind(2, to_ms);
  if (!cid.empty()) st.bind(3, cid);
  store::BucketRow b;
  while (st.step()) {
    b.cid = st.text(0);
    b.start_ms = st.i64(1);
    b.energy_mwh = st.i64(2);
    b.samples = st.i64(3);
    b.power_sum_mw = st.i64(4);
    b.power_min_mw = st.i64(5);
    b.power_max_mw = st.i64(6);
    b.voltage_min_mv = st.i64(7);
    b.voltage_max_mv = st.i64(8);
    b.current_max_ua = st.i64(9);
    fn(b);
  }
}

size_t ReadDb::count_readings(const std::string& cid, int64_t from_ms, int64_t to_ms) {
  Stmt st(db_, cid.empty() ? "SELECT count(*) FROM readings WHERE ts_ms >= ?1 AND ts_ms < ?2"
                           : "SELECT count(*) FROM readings WHERE cid = ?3 AND ts_ms >= ?1 AND ts_ms < ?2");
  st.bind(1, from_ms);
  st.bind(2, to_ms);
  if (!cid.empty()) st.bind(3, cid);
  return st.step() ? static_cast<size_t>(st.i64(0)) : 0;
}

void ReadDb::each_reading(const std::string& cid, int64_t from_ms, int64_t to_ms,
                          const std::function<bool(const store::ReadingRow&)>& fn) {
  static const char* kCols =
      "SELECT cid, boot, seq, ts_ms, flags, voltage_mv, current_ua, power_mw, apparent_mva, power_factor_e4, "
      "energy_mwh, energy_epoch FROM readings ";
  std::string sql = std::string(kCols) + (cid.empty() ? "WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY cid, ts_ms"
                                                      : "WHERE cid = ?3 AND ts_ms >= ?1 AND ts_ms < ?2 "
                                                        "ORDER BY ts_ms");
  Stmt st(db_, sql.c_str());
  st.bind(1, from_ms);
  st.bind(2, to_ms);
  if (!cid.empty()) st.bind(3, cid);
  store::ReadingRow r;
  while (st.step()) {
    r.cid = st.text(0);
    r.boot = static_cast<uint32_t>(st.i64(1));
    r.seq = static_cast<uint32_t>(st.i64(2));
    r.ts_ms = st.i64(3);
    r.flags = static_cast<uint8_t>(st.i64(4));
    r.voltage_mv = static_cast<uint32_t>(st.i64(5));
    r.current_ua = static_cast<uint32_t>(st.i64(6));
    r.power_mw = static_cast<uint32_t>(st.i64(7));
    r.apparent_mva = static_cast<uint32_t>(st.i64(8));
    r.power_factor_e4 = static_cast<uint16_t>(st.i64(9));
    r.energy_mwh = static_cast<uint64_t>(st.i64(10));
    r.energy_epoch = static_cast<uint16_t>(st.i64(11));
    if (!fn(r)) return;
  }
}

}  // namespace pb::cli
