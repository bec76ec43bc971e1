// The connection behind a Store and its prepared statements, shared by the store's sources
// (store.cpp: schema and commits, reader.cpp: the read API, retention.cpp: pruning). Private to
// src/store.
#pragma once

#include <sqlite3.h>
#include <sys/types.h>

#include <array>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "plugbridge/store/store.hpp"

namespace pb::store {

namespace detail {

// The value columns shared by samples, energy_buckets and energy_hours.
constexpr const char* kValueColumns =
    "energy_mwh, samples, power_sum_mw, power_min_mw, power_max_mw, voltage_min_mv, voltage_max_mv, "
    "current_max_ua";
constexpr const char* kEventColumns = "cid, ts_ms, kind, boot, seq, value, detail";

// The statements a connection keeps prepared; index into Store::Impl::stmts. The Store's own are
// spelled by sql_for() (store.cpp); the others by the file that uses them.
enum Slot : size_t {
  kUpsertSample,
  kUpsertHour,
  kSocketId,
  kInsertSocket,
  kRollUpBuckets,
  kRollUpHours,
  kSetMark,
  kReadMark,
  kTailRows,
  kSocketsAll,
  kInsertEvent,
  kLastSeq,
  kLatestSample,
  kSamplesRange,
  kEventsAll,
  kEventsCid,
  kCountAll,
  kCountCid,
  kUserVersion,
  kUpsertBucket,
  kUpsertState,
  kEnergyStates,
  kBucketsRange,
  kEnergySum,
  kOutboxInsert,
  kOutboxDelete,
  kOutboxAll,
  kNewestTime,
  kRollUpDay,
  kInsertDay,
  kDaysEnd,
  kNextBucket,
  kDaysRange,
  kUpsertDayLate,
  kDaysEnergy,
  kOutboxMaxOrd,
  kStoreSlotCount,                  // the slots below have their SQL where they are used
  kPruneSamples = kStoreSlotCount,  // retention.cpp
  kOldestSample,                    // retention.cpp
  kUsedPages,                       // retention.cpp
  kRowsQuarter,                     // reader.cpp, from here on
  kRowsHour,
  kRowsQuarterEnergy,
  kRowsHourEnergy,
  kRowsDay,
  kRowsDayEnergy,
  kExportBucketsAll,
  kExportBucketsCid,
  kExportCountAll,
  kExportCountCid,
  kExportSamplesAll,
  kExportSamplesCid,
  kSlotCount
};

std::string sql_for(Slot slot);  // the Store's own slots

// Resets a cached statement when a use of it ends, also on exceptions.
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* s) : s_(s) {}
  ~StmtUse() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

}  // namespace detail

struct Store::Impl {
  sqlite3* db = nullptr;
  std::string path;
  std::array<sqlite3_stmt*, detail::kSlotCount> stmts{};

  ~Impl() {
    for (sqlite3_stmt* s : stmts) sqlite3_finalize(s);
    if (db != nullptr) sqlite3_close(db);
  }

  // The file this connection opened (st_dev, st_ino), to notice it being deleted or replaced.
  dev_t file_dev = 0;
  ino_t file_ino = 0;
  bool file_known = false;

  // sockets.id by cid, as far as known (a failed commit clears it: its inserts were rolled back).
  std::unordered_map<std::string, int64_t> socket_ids;

  // The id of cid; with create, inserted when missing (inside the caller's transaction), else 0.
  int64_t socket_id(const std::string& cid, bool create);
  int64_t read_mark();  // history_marks.rolled_up_ms as stored now
  // The samples not rolled up yet (start_ms >= the stored mark), summed into rows of width_ms
  // (900000 or 3600000) with from_ms <= start_ms < to_ms, by start_ms then cid; cid "" = all.
  void tail_rows(const std::string& cid, int64_t width_ms, int64_t from_ms, int64_t to_ms,
                 const std::function<void(const BucketRow&)>& fn);
  // Energy of cid's samples not rolled up yet in the quarter-hours [from_q, to_q) (multiples of
  // 900000), from the snapshot's tail.
  int64_t tail_energy(const std::string& cid, int64_t from_q, int64_t to_q);

  // The samples not rolled up yet, summed per socket and quarter-hour (a few rows per socket and
  // hour, whatever the raw resolution). Inside a read transaction the database cannot change, so it
  // is read once and serves every query of the snapshot (the samples table is keyed by time first:
  // one socket's samples cost a scan of every socket's); outside one, it is read for one query.
  struct Tail {
    std::vector<BucketRow> rows;                                  // by start_ms, then cid
    std::unordered_map<std::string, std::vector<size_t>> of_cid;  // indexes into rows, by start_ms
  };
  int read_transactions = 0;
  std::unique_ptr<Tail> tail;
  const Tail& current_tail();

  // The local days rolled up (history_days) with from_ms <= start and end <= to_ms, by start.
  // Inside a read transaction the list is read once, like the tail.
  std::vector<DaySpan> days_in(int64_t from_ms, int64_t to_ms);
  std::unique_ptr<std::vector<DaySpan>> days;
  // Forgets what a snapshot read once (the tail, the days).
  void forget_snapshot() {
    tail.reset();
    days.reset();
  }

  // SQLite's message, plus the operating system's reason when there is one (ENOSPC, EROFS, ...).
  std::string errmsg() const {
    std::string msg = sqlite3_errmsg(db);
    if (const int e = sqlite3_system_errno(db); e != 0) msg += " (" + std::string(std::strerror(e)) + ")";
    return msg;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw StoreError(what + " (" + path + "): " + errmsg(), sqlite3_extended_errcode(db));
  }

  void exec(const std::string& sql, const std::string& what) const {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      sqlite3_free(err);
      fail(what);
    }
  }

  // Rolls back only if a transaction is still open (SQLite undoes some failures by itself).
  void rollback_quietly() const {
    if (sqlite3_get_autocommit(db) == 0) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  // The statement of slot, prepared on first use from make_sql() (only called then).
  template <class MakeSql>
  sqlite3_stmt* stmt(detail::Slot slot, const MakeSql& make_sql) {
    if (stmts[slot] == nullptr) {
      const std::string sql = make_sql();
      if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmts[slot], nullptr) !=
          SQLITE_OK)
        fail("cannot prepare statement");
    }
    return stmts[slot];
  }
  sqlite3_stmt* stmt(detail::Slot slot) {
    return stmt(slot, [slot] { return detail::sql_for(slot); });
  }

  void bind_int(sqlite3_stmt* s, int index, int64_t v) const {
    if (sqlite3_bind_int64(s, index, v) != SQLITE_OK) fail("bind");
  }
  void bind_text(sqlite3_stmt* s, int index, const std::string& v) const {
    if (sqlite3_bind_text(s, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) {
      fail("bind");
    }
  }

  // Steps a statement; true if it produced a row, false when it is done.
  bool step_row(sqlite3_stmt* s, const char* what) const {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(what);
  }

  int user_version() {
    detail::StmtUse use(stmt(detail::kUserVersion));
    if (!step_row(use.get(), "read schema version")) fail("read schema version");
    return sqlite3_column_int(use.get(), 0);
  }

  void migrate(const std::vector<Migration>& list);
  void apply_outbox(const std::vector<OutboxChange>& changes);  // inside an open transaction

  // Inserts one row with a prepared insert; true if inserted, false if it was a duplicate.
  bool insert(sqlite3_stmt* s) const {
    if (sqlite3_step(s) != SQLITE_DONE) fail("insert");
    return sqlite3_changes(db) == 1;
  }

  static std::string text(sqlite3_stmt* s, int column) {
    const unsigned char* p = sqlite3_column_text(s, column);
    return p != nullptr ? reinterpret_cast<const char*>(p) : "";
  }
  // A row of kEventColumns.
  static EventRow read_event(sqlite3_stmt* s) {
    EventRow e;
    e.cid = text(s, 0);
    e.ts_ms = sqlite3_column_int64(s, 1);
    e.kind = text(s, 2);
    if (sqlite3_column_type(s, 3) != SQLITE_NULL) e.boot = static_cast<uint32_t>(sqlite3_column_int64(s, 3));
    if (sqlite3_column_type(s, 4) != SQLITE_NULL) e.seq = static_cast<uint32_t>(sqlite3_column_int64(s, 4));
    e.value = sqlite3_column_int64(s, 5);
    e.detail = text(s, 6);
    return e;
  }
  // From column `first` on: start_ms, energy_mwh, samples, power_sum_mw, power_min_mw,
  // power_max_mw, voltage_min_mv, voltage_max_mv, current_max_ua (NULL reads as 0 for the power,
  // as unset for the voltage and current).
  static void read_bucket_values(sqlite3_stmt* s, int first, BucketRow& b) {
    b.start_ms = sqlite3_column_int64(s, first);
    b.energy_mwh = sqlite3_column_int64(s, first + 1);
    b.samples = sqlite3_column_int64(s, first + 2);
    b.power_sum_mw = sqlite3_column_int64(s, first + 3);
    b.power_min_mw = sqlite3_column_int64(s, first + 4);
    b.power_max_mw = sqlite3_column_int64(s, first + 5);
    const auto optional_int = [s](int col) -> std::optional<int64_t> {
      if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::nullopt;
      return sqlite3_column_int64(s, col);
    };
    b.voltage_min_mv = optional_int(first + 6);
    b.voltage_max_mv = optional_int(first + 7);
    b.current_max_ua = optional_int(first + 8);
  }
  // cid, then the values above.
  static void read_bucket(sqlite3_stmt* s, BucketRow& b) {
    b.cid = text(s, 0);
    read_bucket_values(s, 1, b);
  }
};

}  // namespace pb::store
