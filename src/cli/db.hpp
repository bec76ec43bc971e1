// Streaming read-only queries the Store API does not offer (bucket scans, raw exports). Its own
// SQLite connection, opened read-only: never blocks the daemon's writer (WAL).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "plugbridge/store/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace pb::cli {

class ReadDb {
 public:
  explicit ReadDb(const std::string& path);  // throws std::runtime_error
  ~ReadDb();
  ReadDb(const ReadDb&) = delete;
  ReadDb& operator=(const ReadDb&) = delete;

  // From here on every query reads the database as it is now (one read transaction, ended by the
  // destructor), whatever the daemon commits meanwhile, so totals and rows of one command agree.
  void begin_snapshot();

  // Buckets with from_ms <= start_ms < to_ms, by start_ms; cid "" = all sockets (then several
  // rows may share a start_ms).
  void each_bucket(const std::string& cid, int64_t from_ms, int64_t to_ms,
                   const std::function<void(const store::BucketRow&)>& fn);
  // Rows of energy_buckets (kQuarter) or of its hourly rollup energy_hours (kHour) of one socket
  // with from_ms <= start_ms < to_ms, by start_ms. The statements are prepared once per ReadDb, so
  // many short scans stay cheap.
  enum class Rollup { kQuarter, kHour };
  // energy_only: only start_ms and energy_mwh are read (the rest stays 0; --all needs no more).
  void each_row(Rollup table, const std::string& cid, int64_t from_ms, int64_t to_ms,
                const std::function<void(const store::BucketRow&)>& fn, bool energy_only = false);
  // Raw readings with from_ms <= ts_ms < to_ms, by cid then time; fn returns false to stop.
  size_t count_readings(const std::string& cid, int64_t from_ms, int64_t to_ms);
  void each_reading(const std::string& cid, int64_t from_ms, int64_t to_ms,
                    const std::function<bool(const store::ReadingRow&)>& fn);

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* rollup_stmt_[4] = {nullptr, nullptr, nullptr, nullptr};
};

}  // namespace pb::cli
