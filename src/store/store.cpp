// The Store: opening, schema migrations, commits and the daemon's own reads. The read API for
// other readers is in reader.cpp, the pruning of old samples in retention.cpp.
#include "plugbridge/store/store.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <tuple>

#include "plugbridge/common/log.hpp"
#include "store_impl.hpp"

namespace pb::store {

using namespace detail;

namespace {

// An additive UPSERT of the value columns into table keyed by key (two columns, bound first):
// sums added, minima and maxima merged. Multi-argument min()/max() are NULL if any argument is,
// hence the coalesce.
std::string upsert_sql(const std::string& table, const std::string& key) {
  auto merge = [](const char* col, const char* fn) {
    return std::string(col) + " = coalesce(" + fn + "(" + col + ", excluded." + col + "), " + col +
           ", excluded." + col + ")";
  };
  return "INSERT INTO " + table + " (" + key + ", " + kValueColumns + ") VALUES (?,?,?,?,?,?,?,?,?,?) " +
         "ON CONFLICT (" + key + ") DO UPDATE SET energy_mwh = energy_mwh + excluded.energy_mwh, " +
         "samples = samples + excluded.samples, power_sum_mw = power_sum_mw + excluded.power_sum_mw, " +
         merge("power_min_mw", "min") + ", " + merge("power_max_mw", "max") + ", " +
         merge("voltage_min_mv", "min") + ", " + merge("voltage_max_mv", "max") + ", " +
         merge("current_max_ua", "max");
}

// The value columns of rows of table alias t summed into one (as a GROUP BY's select list): sums
// added, minima and maxima over the rows (min()/max() skip the NULLs of rows without samples).
std::string summed_values(const std::string& t) {
  return "sum(" + t + "energy_mwh), sum(" + t + "samples), sum(" + t + "power_sum_mw), min(" + t +
         "power_min_mw), max(" + t + "power_max_mw), min(" + t + "voltage_min_mv), max(" + t +
         "voltage_max_mv), max(" + t + "current_max_ua)";
}

// The samples of [?1, ?2) summed per socket into rows starting at a multiple of width, as
// (cid, start_ms, value columns).
std::string summed_samples_sql(const std::string& width) {
  return "SELECT k.cid, s.start_ms - (s.start_ms % " + width + " + " + width + ") % " + width + " AS b, " +
         summed_values("s.") +
         " FROM samples s JOIN sockets k ON k.id = s.socket WHERE s.start_ms >= ?1 AND s.start_ms < ?2 ";
}

constexpr const char* kMark = "(SELECT value FROM history_marks WHERE name = 'rolled_up_ms')";

}  // namespace

std::string detail::sql_for(Slot slot) {
  const std::string e = kEventColumns;
  const std::string v = kValueColumns;
  switch (slot) {
    case kUpsertSample:
      return upsert_sql("samples", "start_ms, socket");
    case kUpsertBucket:
      return upsert_sql("energy_buckets", "cid, start_ms");
    case kUpsertHour:
      return upsert_sql("energy_hours", "cid, start_ms");
    case kSocketId:
      return "SELECT id FROM sockets WHERE cid = ?";
    case kInsertSocket:
      return "INSERT INTO sockets (cid) VALUES (?)";
    case kRollUpBuckets:
    case kRollUpHours: {
      // A WHERE clause before the UPSERT's ON: SQLite's rule for INSERT ... SELECT ... ON CONFLICT.
      const bool hours = slot == kRollUpHours;
      std::string sql = std::string("INSERT INTO ") + (hours ? "energy_hours" : "energy_buckets") +
                        " (cid, start_ms, " + v + ") " + summed_samples_sql(hours ? "3600000" : "900000") +
                        "GROUP BY s.socket, b ";
      const std::string upsert = upsert_sql("x", "cid, start_ms");
      return sql + upsert.substr(upsert.find("ON CONFLICT"));
    }
    case kSetMark:
      return "INSERT OR REPLACE INTO history_marks (name, value) VALUES ('rolled_up_ms', ?)";
    case kReadMark:
      return std::string("SELECT coalesce(") + kMark + ", 0)";
    case kTailRows:
      // The samples from the mark on, in key order.
      return "SELECT socket, start_ms, " + v + " FROM samples WHERE start_ms >= " + std::string(kMark);
    case kSocketsAll:
      return "SELECT id, cid FROM sockets";
    case kInsertEvent:
      return "INSERT INTO events (" + e + ") VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING";
    case kLastSeq:
      return "SELECT max(m) FROM (SELECT seq AS m FROM energy_state WHERE cid = ?1 AND boot = ?2 "
             "UNION ALL SELECT max(seq) FROM events WHERE cid = ?1 AND boot = ?2 AND seq IS NOT NULL)";
    case kLatestSample:
      // The socket's newest sample is near its energy state's time: a bounded look back, not a scan
      // of every socket's samples.
      return "SELECT k.cid, s.start_ms, " + v +
             " FROM samples s JOIN sockets k ON k.id = s.socket WHERE k.cid = ?1 AND s.start_ms >= "
             "coalesce((SELECT ts_ms FROM energy_state WHERE cid = ?1), 0) - 86400000 "
             "ORDER BY s.start_ms DESC LIMIT 1";
    case kSamplesRange:
      return "SELECT k.cid, s.start_ms, " + v +
             " FROM samples s JOIN sockets k ON k.id = s.socket WHERE k.cid = ? AND s.start_ms >= ? AND "
             "s.start_ms < ? ORDER BY s.start_ms";
    case kEventsAll:
      return "SELECT " + e + " FROM events WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, id";
    case kEventsCid:
      return "SELECT " + e + " FROM events WHERE cid = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, id";
    case kCountAll:
      return "SELECT count(*) FROM samples";
    case kCountCid:
      return "SELECT count(*) FROM samples WHERE socket = (SELECT id FROM sockets WHERE cid = ?)";
    case kUserVersion:
      return "PRAGMA user_version";
    case kUpsertState:
      return "INSERT OR REPLACE INTO energy_state (cid, boot, seq, ts_ms, energy_mwh, energy_epoch, "
             "total_mwh) "
             "VALUES (?,?,?,?,?,?,?)";
    case kNewestTime:
      // Every socket's newest accounted reading, the newest event and outbox row (each by an index
      // or a key: no scan of the samples).
      return "SELECT max(coalesce((SELECT max(ts_ms) FROM energy_state), 0), "
             "coalesce((SELECT ts_ms FROM events ORDER BY id DESC LIMIT 1), 0), "
             "coalesce((SELECT t_ms FROM outbox ORDER BY ord DESC LIMIT 1), 0))";
    case kEnergyStates:
      return "SELECT cid, boot, seq, ts_ms, energy_mwh, energy_epoch, total_mwh FROM energy_state ORDER BY "
             "cid";
    case kBucketsRange:
      return "SELECT cid, start_ms, " + v +
             " FROM energy_buckets WHERE cid = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms";
    case kEnergySum:
      // Whole hours [?4, ?5) from the hourly rollup, the quarter-hours around them from the buckets,
      // and the samples not rolled up yet (those of the buckets from ?2 to ?3: [?6, ?7)).
      return "SELECT (SELECT coalesce(sum(energy_mwh), 0) FROM energy_hours "
             "WHERE cid = ?1 AND start_ms >= ?4 AND start_ms < ?5) + "
             "(SELECT coalesce(sum(energy_mwh), 0) FROM energy_buckets "
             "WHERE cid = ?1 AND start_ms >= ?2 AND start_ms < ?4) + "
             "(SELECT coalesce(sum(energy_mwh), 0) FROM energy_buckets "
             "WHERE cid = ?1 AND start_ms >= ?5 AND start_ms < ?3) + "
             "(SELECT coalesce(sum(energy_mwh), 0) FROM samples "
             "WHERE socket = (SELECT id FROM sockets WHERE cid = ?1) AND start_ms >= max(?6, " +
             std::string(kMark) + ") AND start_ms < ?7)";
    case kRollUpDay: {
      // Every socket's rows of the day [?1, ?2): the hours [?3, ?4) inside it and the quarter-hours
      // around them (a :30/:45 zone's midnight splits an hour). CROSS JOIN keeps the sockets the
      // outer loop, so each range is a seek into a table keyed by cid first (SQLite's planner would
      // otherwise scan the whole table once per day).
      auto part = [&v](const char* table, const char* from, const char* to) {
        // The value columns are r's alone (sockets has id and cid).
        return "SELECT r.cid, " + v + " FROM sockets k CROSS JOIN " + table +
               " r ON r.cid = k.cid AND r.start_ms >= " + from + " AND r.start_ms < " + to;
      };
      return "INSERT OR REPLACE INTO energy_days (cid, start_ms, " + v + ") SELECT cid, ?1, " +
             summed_values("") + " FROM (" + part("energy_hours", "?3", "?4") + " UNION ALL " +
             part("energy_buckets", "?1", "?3") + " UNION ALL " + part("energy_buckets", "?4", "?2") +
             ") GROUP BY cid";
    }
    case kInsertDay:
      return "INSERT INTO history_days (start_ms, end_ms) VALUES (?, ?)";
    case kDaysEnd:
      return "SELECT end_ms FROM history_days ORDER BY start_ms DESC LIMIT 1";
    case kNextBucket:
      return "SELECT min(m) FROM (SELECT (SELECT b.start_ms FROM energy_buckets b WHERE b.cid = k.cid AND "
             "b.start_ms >= ?1 ORDER BY b.start_ms LIMIT 1) AS m FROM sockets k)";
    case kDaysRange:
      return "SELECT start_ms, end_ms FROM history_days WHERE start_ms >= ?1 AND start_ms < ?2 AND "
             "end_ms <= ?2 ORDER BY start_ms";
    case kUpsertDayLate: {
      // A sample's values (?3...) added to the row of the listed day that holds ?2, if there is one.
      std::string sql = upsert_sql("energy_days", "cid, start_ms");
      const std::string values = "VALUES (?,?,?,?,?,?,?,?,?,?)";
      sql.replace(sql.find(values), values.size(),
                  "SELECT ?1, d.start_ms, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM (SELECT start_ms, end_ms FROM "
                  "history_days WHERE start_ms <= ?2 ORDER BY start_ms DESC LIMIT 1) d WHERE d.end_ms > ?2");
      return sql;
    }
    case kDaysEnergy:
      return "SELECT coalesce(sum(energy_mwh), 0) FROM energy_days WHERE cid = ? AND start_ms >= ? AND "
             "start_ms <= ?";
    case kOutboxInsert:
      return "INSERT INTO outbox (ord, cid, dp, kind, t_ms, value, uplink) VALUES (?,?,?,?,?,?,?) ON "
             "CONFLICT DO NOTHING";
    case kOutboxDelete:
      return "DELETE FROM outbox WHERE ord = ?";
    case kOutboxMaxOrd:
      return "SELECT coalesce(max(ord), 0) + 1 FROM outbox";
    case kOutboxAll:
      return "SELECT ord, cid, dp, kind, t_ms, value FROM outbox WHERE uplink = ? ORDER BY ord";
    default:  // the slots whose SQL is spelled where they are used
      break;
  }
  return {};
}

namespace {

int max_number(const std::vector<Migration>& list) {
  return list.empty() ? 0 : list.back().number;
}

void validate(const std::vector<Migration>& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].number != static_cast<int>(i + 1)) {
      throw StoreError("migration list is not numbered 1..N: " + std::string(list[i].name) + " at position " +
                       std::to_string(i + 1));
    }
  }
}

std::string directory_of(const std::string& path) {
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return dir.empty() ? "." : dir.string();
}

// Why a database that should be written cannot be: the mount, the file's or the directory's mode.
std::string why_not_writable(const std::string& path) {
  const std::string dir = directory_of(path);
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY) != 0)
    return "the file system holding " + dir + " is mounted read-only";
  if (::access(path.c_str(), W_OK) != 0 && errno != ENOENT)
    return "the file is not writable for this user (" + std::string(std::strerror(errno)) + ")";
  if (::access(dir.c_str(), W_OK) != 0)
    return "the directory " + dir + " is not writable for this user (" + std::string(std::strerror(errno)) +
           "); SQLite keeps its -wal and -shm files next to the database";
  return "SQLite could only open it read-only";
}

// Runs `pragma` (quick_check or integrity_check), interrupted once budget has passed.
IntegrityReport run_check(sqlite3* db, const std::string& pragma, std::chrono::milliseconds budget) {
  IntegrityReport report;
  const auto start = std::chrono::steady_clock::now();
  struct Deadline {
    std::chrono::steady_clock::time_point end;
    bool hit = false;
  } deadline{start + budget};
  sqlite3_progress_handler(
      db, 1000,
      [](void* p) -> int {
        auto* d = static_cast<Deadline*>(p);
        if (std::chrono::steady_clock::now() < d->end) return 0;
        d->hit = true;
        return 1;
      },
      &deadline);
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db, ("PRAGMA " + pragma + "(20)").c_str(), -1, &s, nullptr);
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) break;
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    // One row may hold several lines, headed by "*** in database main ***".
    std::string rest = text != nullptr ? text : "";
    for (size_t nl; !rest.empty(); rest = nl == std::string::npos ? "" : rest.substr(nl + 1)) {
      nl = rest.find('\n');
      const std::string line = rest.substr(0, nl);
      if (line != "ok" && !line.empty() && line.rfind("*** in database", 0) != 0)
        report.problems.push_back(line);
    }
  }
  if (rc != SQLITE_DONE) {
    if (deadline.hit) {
      report.complete = false;
    } else {
      report.problems.push_back(std::string("the check itself failed: ") + sqlite3_errmsg(db));
    }
  }
  sqlite3_finalize(s);
  sqlite3_progress_handler(db, 0, nullptr, nullptr);
  report.ok = report.problems.empty();
  report.took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return report;
}

}  // namespace

bool StoreError::disk_full() const {
  return (code_ & 0xff) == SQLITE_FULL;
}

bool damaged(const StoreError& e) {
  return (e.code() & 0xff) == SQLITE_CORRUPT || (e.code() & 0xff) == SQLITE_NOTADB;
}

std::string damaged_message(const std::string& path, const std::string& detail) {
  return "database " + path + " is damaged: " + detail +
         "; refusing to run on it. With the daemon stopped: `plugbridge db check` lists the damage, "
         "`plugbridge db recover` copies what can be read into a new file (see plugbridge(1))";
}

IntegrityReport check_file(const std::string& path, std::chrono::milliseconds budget, bool full) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) {
    IntegrityReport r;
    r.ok = false;
    r.problems.push_back("cannot open " + path + ": " +
                         (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, 5000);
  IntegrityReport r = run_check(db, full ? "integrity_check" : "quick_check", budget);
  sqlite3_close(db);
  return r;
}

void Store::Impl::migrate(const std::vector<Migration>& list) {
  const int latest = max_number(list);
  for (;;) {
    exec("BEGIN IMMEDIATE", "begin migration");
    // Re-read inside the write lock: another process may have migrated meanwhile.
    const int version = user_version();
    if (version >= latest) {
      exec("COMMIT", "commit");
      return;
    }
    const Migration& m = list[static_cast<size_t>(version)];
    try {
      exec(std::string(m.sql), "migration " + std::string(m.name) + " failed");
      exec("PRAGMA user_version = " + std::to_string(m.number), "set schema version");
      exec("COMMIT", "commit migration " + std::string(m.name));
    } catch (const StoreError& e) {
      rollback_quietly();
      throw StoreError(std::string(e.what()) + "; rolled back, database stays at schema version " +
                       std::to_string(version));
    }
    PB_LOG(Info, "store") << "applied migration " << m.name << " to " << path;
  }
}

void Store::Impl::apply_outbox(const std::vector<OutboxChange>& changes) {
  for (const OutboxChange& c : changes) {
    if (c.remove) {
      StmtUse use(stmt(kOutboxDelete));
      bind_int(use.get(), 1, c.row.ord);
      if (sqlite3_step(use.get()) != SQLITE_DONE) fail("delete outbox row");
      continue;
    }
    if (c.row.cid.empty()) throw StoreError("outbox row with an empty cid");
    StmtUse use(stmt(kOutboxInsert));
    sqlite3_stmt* s = use.get();
    bind_int(s, 1, c.row.ord);
    bind_text(s, 2, c.row.cid);
    bind_int(s, 3, c.row.dp);
    bind_int(s, 4, c.row.event ? 0 : 1);
    bind_int(s, 5, c.row.t_ms);
    bind_text(s, 6, c.row.value);
    bind_text(s, 7, c.row.uplink);
    if (sqlite3_step(s) != SQLITE_DONE) fail("insert outbox row");
  }
}

Store::Store(const std::string& path, bool read_only) : Store(path, StoreOptions{.read_only = read_only}) {}

Store::Store(const std::string& path, const StoreOptions& options)
    : path_(path), impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.path = path;
  const std::vector<Migration>& list =
      options.migrations != nullptr ? *options.migrations : embedded_migrations();
  validate(list);
  const int latest = max_number(list);

  // A read-only Store (the CLI, one thread) skips SQLite's per-call connection mutex: the history
  // scans read many rows.
  const int flags = options.read_only ? (SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)
                                      : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (const int rc = sqlite3_open_v2(path.c_str(), &d.db, flags, nullptr); rc != SQLITE_OK) {
    std::string msg = d.db != nullptr ? d.errmsg() : "out of memory";
    if (!options.read_only && (rc & 0xff) == SQLITE_CANTOPEN) msg += "; " + why_not_writable(path);
    throw StoreError("cannot open database " + path + ": " + msg, rc);
  }
  sqlite3_extended_result_codes(d.db, 1);
  sqlite3_busy_timeout(d.db, options.busy_timeout_ms);
  // SQLite silently falls back to read-only when it may not write the file: the daemon would start
  // and then fail every commit.
  if (!options.read_only && sqlite3_db_readonly(d.db, "main") == 1)
    throw StoreError("database " + path + " is read-only: " + why_not_writable(path), SQLITE_READONLY);

  const std::string& sync = options.synchronous;
  if (sync != "FULL" && sync != "NORMAL" && sync != "OFF" && sync != "EXTRA") {
    throw StoreError("invalid synchronous mode '" + sync + "' (FULL, NORMAL, OFF, EXTRA)");
  }
  if (options.read_only) {
    d.exec("PRAGMA query_only = ON", "configure");
  } else {
    d.exec("PRAGMA journal_mode = WAL", "enable WAL");
  }
  d.exec("PRAGMA synchronous = " + sync, "configure");
  d.exec("PRAGMA foreign_keys = ON", "configure");

  const int version = d.user_version();
  if (version > latest) {
    throw StoreError(
        "database " + path + " has schema version " + std::to_string(version) + ", newer than version " +
        std::to_string(latest) +
        " known by this build of plugbridge; refusing to open it (was it written by a newer release?)");
  }
  if (version < latest) {
    if (options.read_only) {
      throw StoreError("database " + path + " has schema version " + std::to_string(version) + ", expected " +
                       std::to_string(latest) +
                       "; a read-only open cannot migrate it (open it read-write once)");
    }
    d.migrate(list);
  }
  if (!options.read_only) {
    // A write lock needs the -wal and -shm files: a directory that may not be written shows here,
    // before the daemon says it is ready, not at its first commit.
    try {
      d.exec("BEGIN IMMEDIATE", "take the write lock");
      d.exec("COMMIT", "release the write lock");
    } catch (const StoreError& e) {
      d.rollback_quietly();
      throw StoreError(std::string(e.what()) + "; " + why_not_writable(path), e.code());
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    d.file_dev = st.st_dev;
    d.file_ino = st.st_ino;
    d.file_known = true;
  }
}

Store::~Store() = default;

std::optional<std::string> Store::file_problem() const {
  const Impl& d = *impl_;
  if (!d.file_known) return std::nullopt;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) return "the database file " + path_ + " was deleted";
    return std::nullopt;  // EACCES, EIO...: not evidence of another file
  }
  if (st.st_dev != d.file_dev || st.st_ino != d.file_ino)
    return "the database file " + path_ + " was replaced by another file (inode " +
           std::to_string(d.file_ino) + " is now " + std::to_string(st.st_ino) + ")";
  return std::nullopt;
}

IntegrityReport Store::quick_check(std::chrono::milliseconds budget) const {
  return run_check(impl_->db, "quick_check", budget);
}

bool Store::checkpoint() {
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(impl_->db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  return rc == SQLITE_OK;
}

void Store::interrupt() {
  sqlite3_interrupt(impl_->db);
}

int Store::latest_schema_version() {
  return max_number(embedded_migrations());
}

int Store::schema_version() const {
  return impl_->user_version();
}

void Store::apply_outbox(const std::vector<OutboxChange>& changes) {
  if (changes.empty()) return;
  Impl& d = *impl_;
  d.exec("BEGIN IMMEDIATE", "begin outbox");
  try {
    d.apply_outbox(changes);
    d.exec("COMMIT", "commit outbox");
  } catch (...) {
    d.rollback_quietly();
    throw;
  }
}

std::vector<OutboxRow> Store::outbox_rows(const std::string& uplink) const {
  StmtUse use(impl_->stmt(kOutboxAll));
  sqlite3_stmt* s = use.get();
  impl_->bind_text(s, 1, uplink);
  std::vector<OutboxRow> out;
  while (impl_->step_row(s, "outbox_rows")) {
    OutboxRow r;
    r.uplink = uplink;
    r.ord = sqlite3_column_int64(s, 0);
    r.cid = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
    r.dp = sqlite3_column_int(s, 2);
    r.event = sqlite3_column_int(s, 3) == 0;
    r.t_ms = sqlite3_column_int64(s, 4);
    r.value = reinterpret_cast<const char*>(sqlite3_column_text(s, 5));
    out.push_back(std::move(r));
  }
  return out;
}

int64_t Store::Impl::socket_id(const std::string& cid, bool create) {
  if (auto it = socket_ids.find(cid); it != socket_ids.end()) return it->second;
  {
    StmtUse use(stmt(kSocketId));
    bind_text(use.get(), 1, cid);
    if (step_row(use.get(), "look up socket id")) {
      const int64_t id = sqlite3_column_int64(use.get(), 0);
      socket_ids.emplace(cid, id);
      return id;
    }
  }
  if (!create) return 0;
  StmtUse use(stmt(kInsertSocket));
  bind_text(use.get(), 1, cid);
  if (sqlite3_step(use.get()) != SQLITE_DONE) fail("add socket id");
  const int64_t id = sqlite3_last_insert_rowid(db);
  socket_ids.emplace(cid, id);
  return id;
}

int64_t Store::Impl::read_mark() {
  StmtUse use(stmt(kReadMark));
  return step_row(use.get(), "read rolled_up_ms") ? sqlite3_column_int64(use.get(), 0) : 0;
}

namespace {

// Adds a row of the same socket into a wider one (min/max only over rows that have samples, and
// over the voltages and currents that were measured).
void merge_row(BucketRow& into, const BucketRow& r) {
  if (r.samples > 0 && into.samples > 0) {
    into.power_min_mw = std::min(into.power_min_mw, r.power_min_mw);
    into.power_max_mw = std::max(into.power_max_mw, r.power_max_mw);
  } else if (r.samples > 0) {
    into.power_min_mw = r.power_min_mw;
    into.power_max_mw = r.power_max_mw;
  }
  merge_min(into.voltage_min_mv, r.voltage_min_mv);
  merge_max(into.voltage_max_mv, r.voltage_max_mv);
  merge_max(into.current_max_ua, r.current_max_ua);
  into.energy_mwh += r.energy_mwh;
  into.samples += r.samples;
  into.power_sum_mw += r.power_sum_mw;
}

}  // namespace

const Store::Impl::Tail& Store::Impl::current_tail() {
  if (tail && read_transactions > 0) return *tail;
  tail.reset();  // before the new one is read: never two in memory
  auto t = std::make_unique<Tail>();
  // The samples in key order (time, then socket id), summed here: SQL's GROUP BY would sort them
  // through a temporary B-tree first, several times slower.
  std::map<std::pair<int64_t, int64_t>, BucketRow> quarters;  // (quarter, socket id)
  {
    StmtUse use(stmt(kTailRows));
    sqlite3_stmt* s = use.get();
    BucketRow b;
    while (step_row(s, "read samples not rolled up yet")) {
      const int64_t socket = sqlite3_column_int64(s, 0);
      read_bucket_values(s, 1, b);
      const int64_t q = b.start_ms - ((b.start_ms % 900'000) + 900'000) % 900'000;
      auto [at, fresh] = quarters.try_emplace({q, socket}, b);
      if (fresh)
        at->second.start_ms = q;
      else
        merge_row(at->second, b);
    }
  }
  if (!quarters.empty()) {
    std::unordered_map<int64_t, std::string> cids;
    StmtUse use(stmt(kSocketsAll));
    while (step_row(use.get(), "read sockets")) cids[sqlite3_column_int64(use.get(), 0)] = text(use.get(), 1);
    t->rows.reserve(quarters.size());
    for (auto& [key, row] : quarters) {
      row.cid = cids[key.second];
      t->rows.push_back(std::move(row));
    }
    std::sort(t->rows.begin(), t->rows.end(), [](const BucketRow& x, const BucketRow& y) {
      return std::tie(x.start_ms, x.cid) < std::tie(y.start_ms, y.cid);
    });
    for (size_t i = 0; i < t->rows.size(); ++i) t->of_cid[t->rows[i].cid].push_back(i);
  }
  tail = std::move(t);
  return *tail;
}

int64_t Store::Impl::tail_energy(const std::string& cid, int64_t from_q, int64_t to_q) {
  const Tail& t = current_tail();
  const auto it = t.of_cid.find(cid);
  if (it == t.of_cid.end()) return 0;
  int64_t sum = 0;
  for (const size_t i : it->second)
    if (t.rows[i].start_ms >= from_q && t.rows[i].start_ms < to_q) sum += t.rows[i].energy_mwh;
  return sum;
}

void Store::Impl::tail_rows(const std::string& cid, int64_t width_ms, int64_t from_ms, int64_t to_ms,
                            const std::function<void(const BucketRow&)>& fn) {
  if (to_ms <= from_ms) return;
  // From the tail's quarter-hours: the rows of width_ms that start in [from_ms, to_ms) (every sample
  // of such a row starts at or after from_ms and before the row's end).
  const Tail& t = current_tail();
  std::vector<size_t> all;
  const std::vector<size_t>* picked = &all;
  if (cid.empty()) {
    all.resize(t.rows.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  } else if (const auto it = t.of_cid.find(cid); it != t.of_cid.end()) {
    picked = &it->second;
  }
  std::map<std::pair<int64_t, std::string>, BucketRow> rows;  // by start, then cid
  for (const size_t i : *picked) {
    const BucketRow& q = t.rows[i];
    const int64_t b = q.start_ms - ((q.start_ms % width_ms) + width_ms) % width_ms;
    if (b < from_ms || b >= to_ms) continue;
    auto [at, fresh] = rows.try_emplace({b, q.cid}, q);
    if (fresh)
      at->second.start_ms = b;
    else
      merge_row(at->second, q);
  }
  if (read_transactions == 0) tail.reset();  // read for this query only
  for (const auto& [key, row] : rows) fn(row);
}

CommitResult Store::commit(const std::vector<EventRow>& events, const EnergyUpdate& energy,
                           const std::vector<OutboxChange>& outbox) {
  CommitResult result;
  if (events.empty() && energy.samples.empty() && energy.states.empty() && outbox.empty()) return result;
  Impl& d = *impl_;
  d.tail.reset();  // stale after this write: its memory goes now, not at the next query
  d.exec("BEGIN IMMEDIATE", "begin commit");
  try {
    // Read under the write lock: another connection may have rolled up since this one last looked.
    const int64_t rolled_up = energy.samples.empty() ? 0 : d.read_mark();
    sqlite3_stmt* ins_e = d.stmt(kInsertEvent);
    for (const EventRow& e : events) {
      if (e.cid.empty()) throw StoreError("commit: event with an empty cid");
      if (e.boot.has_value() != e.seq.has_value()) {
        throw StoreError("commit: event '" + e.kind + "' of " + e.cid +
                         " must have both boot and seq, or neither");
      }
      StmtUse use(ins_e);
      d.bind_text(ins_e, 1, e.cid);
      d.bind_int(ins_e, 2, e.ts_ms);
      d.bind_text(ins_e, 3, e.kind);
      if (e.boot) d.bind_int(ins_e, 4, *e.boot);  // unbound parameters are NULL
      if (e.seq) d.bind_int(ins_e, 5, *e.seq);
      d.bind_int(ins_e, 6, e.value);
      d.bind_text(ins_e, 7, e.detail);
      ++(d.insert(ins_e) ? result.events_inserted : result.events_duplicate);
    }
    // Binds a sample's values from parameter 3 on (unbound parameters are NULL: no power minima and
    // maxima without a sample, no voltage or current that was not measured).
    auto bind_values = [&d](sqlite3_stmt* s, const BucketUpdate& b) {
      d.bind_int(s, 3, b.energy_mwh);
      d.bind_int(s, 4, b.samples);
      d.bind_int(s, 5, b.power_sum_mw);
      if (b.samples > 0) {
        d.bind_int(s, 6, b.power_min_mw);
        d.bind_int(s, 7, b.power_max_mw);
      }
      if (b.voltage_min_mv) d.bind_int(s, 8, *b.voltage_min_mv);
      if (b.voltage_max_mv) d.bind_int(s, 9, *b.voltage_max_mv);
      if (b.current_max_ua) d.bind_int(s, 10, *b.current_max_ua);
    };
    auto floor_to = [](int64_t t, int64_t w) { return t - ((t % w) + w) % w; };
    for (const BucketUpdate& b : energy.samples) {
      if (b.cid.empty()) throw StoreError("commit: sample with an empty cid");
      {
        StmtUse use(d.stmt(kUpsertSample));
        d.bind_int(use.get(), 1, b.start_ms);
        d.bind_int(use.get(), 2, d.socket_id(b.cid, true));
        bind_values(use.get(), b);
        if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("store sample");
      }
      ++result.samples_written;
      if (b.start_ms >= rolled_up) continue;
      // Its bucket and hour were rolled up already: add it to them as well.
      for (const auto& [slot, width] :
           {std::pair{kUpsertBucket, int64_t{900'000}}, {kUpsertHour, 3'600'000}}) {
        StmtUse use(d.stmt(slot));
        d.bind_text(use.get(), 1, b.cid);
        d.bind_int(use.get(), 2, floor_to(b.start_ms, width));
        bind_values(use.get(), b);
        if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("add a late sample to its bucket");
      }
      {
        StmtUse use(d.stmt(kUpsertDayLate));
        d.bind_text(use.get(), 1, b.cid);
        d.bind_int(use.get(), 2, b.start_ms);
        bind_values(use.get(), b);
        if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("add a late sample to its day");
      }
    }
    for (const EnergyStateRow& st : energy.states) {
      if (st.cid.empty()) throw StoreError("commit: energy state with an empty cid");
      StmtUse use(d.stmt(kUpsertState));
      sqlite3_stmt* s = use.get();
      d.bind_text(s, 1, st.cid);
      d.bind_int(s, 2, st.boot);
      d.bind_int(s, 3, st.seq);
      d.bind_int(s, 4, st.ts_ms);
      d.bind_int(s, 5, static_cast<int64_t>(st.energy_mwh));
      d.bind_int(s, 6, st.energy_epoch);
      d.bind_int(s, 7, st.total_mwh);
      if (sqlite3_step(s) != SQLITE_DONE) d.fail("store energy state");
    }
    d.apply_outbox(outbox);
    d.exec("COMMIT", "commit");
  } catch (...) {
    d.rollback_quietly();
    d.socket_ids.clear();  // ids added by this transaction are gone
    throw;
  }
  return result;
}

size_t Store::roll_up(int64_t up_to_ms) {
  Impl& d = *impl_;
  if (up_to_ms <= d.read_mark()) return 0;
  size_t rolled = 0;
  d.tail.reset();
  d.exec("BEGIN IMMEDIATE", "begin roll-up");
  try {
    // Again under the write lock: another connection may have rolled up meanwhile, and rolling the
    // same samples up twice would count their energy twice.
    const int64_t from = d.read_mark();
    if (up_to_ms <= from) {
      d.exec("COMMIT", "end roll-up");
      return 0;
    }
    for (const Slot slot : {kRollUpBuckets, kRollUpHours}) {
      StmtUse use(d.stmt(slot));
      d.bind_int(use.get(), 1, from);
      d.bind_int(use.get(), 2, up_to_ms);
      if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("roll samples up");
      if (slot == kRollUpBuckets) rolled = static_cast<size_t>(sqlite3_changes(d.db));
    }
    StmtUse use(d.stmt(kSetMark));
    d.bind_int(use.get(), 1, up_to_ms);
    if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("move rolled_up_ms");
    d.exec("COMMIT", "commit roll-up");
  } catch (...) {
    d.rollback_quietly();
    throw;
  }
  return rolled;
}

int64_t Store::rolled_up_ms() const {
  return impl_->read_mark();
}

size_t Store::roll_up_days(const std::vector<DaySpan>& days) {
  Impl& d = *impl_;
  constexpr int64_t kHour = 3'600'000;
  auto ceil_hour = [](int64_t t) {
    const int64_t r = ((t % kHour) + kHour) % kHour;
    return r == 0 ? t : t - r + kHour;
  };
  size_t rolled = 0;
  for (const DaySpan& day : days) {
    if (day.to_ms <= day.from_ms || day.from_ms % 900'000 != 0 || day.to_ms % 900'000 != 0)
      throw StoreError("roll_up_days: not a day of whole quarter-hours: [" + std::to_string(day.from_ms) +
                       ", " + std::to_string(day.to_ms) + ")");
    d.forget_snapshot();
    d.exec("BEGIN IMMEDIATE", "begin day roll-up");
    try {
      // Checked under the write lock: another connection may have listed days or moved the mark.
      const std::optional<int64_t> listed_to = days_rolled_up_to();
      if ((listed_to && day.from_ms < *listed_to) || day.to_ms > d.read_mark()) {
        d.exec("COMMIT", "end day roll-up");
        return rolled;
      }
      // The whole hours of the day, [h_from, h_to) (empty: both at its end).
      int64_t h_from = ceil_hour(day.from_ms), h_to = day.to_ms - ((day.to_ms % kHour) + kHour) % kHour;
      if (h_to <= h_from) h_from = h_to = day.to_ms;
      {
        StmtUse use(d.stmt(kRollUpDay));
        d.bind_int(use.get(), 1, day.from_ms);
        d.bind_int(use.get(), 2, day.to_ms);
        d.bind_int(use.get(), 3, h_from);
        d.bind_int(use.get(), 4, h_to);
        if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("roll the buckets up into a day");
      }
      {
        StmtUse use(d.stmt(kInsertDay));
        d.bind_int(use.get(), 1, day.from_ms);
        d.bind_int(use.get(), 2, day.to_ms);
        if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("list a rolled-up day");
      }
      d.exec("COMMIT", "commit day roll-up");
    } catch (...) {
      d.rollback_quietly();
      throw;
    }
    ++rolled;
  }
  return rolled;
}

std::optional<int64_t> Store::days_rolled_up_to() const {
  StmtUse use(impl_->stmt(kDaysEnd));
  if (!impl_->step_row(use.get(), "read the last rolled-up day")) return std::nullopt;
  return sqlite3_column_int64(use.get(), 0);
}

std::optional<int64_t> Store::next_bucket_ms(int64_t from_ms) const {
  StmtUse use(impl_->stmt(kNextBucket));
  impl_->bind_int(use.get(), 1, from_ms);
  if (!impl_->step_row(use.get(), "find the next bucket") || sqlite3_column_type(use.get(), 0) == SQLITE_NULL)
    return std::nullopt;
  return sqlite3_column_int64(use.get(), 0);
}

std::vector<DaySpan> Store::rolled_days(int64_t from_ms, int64_t to_ms) const {
  return impl_->days_in(from_ms, to_ms);
}

std::vector<DaySpan> Store::Impl::days_in(int64_t from_ms, int64_t to_ms) {
  auto read = [this](int64_t from, int64_t to) {
    std::vector<DaySpan> out;
    StmtUse use(stmt(kDaysRange));
    bind_int(use.get(), 1, from);
    bind_int(use.get(), 2, to);
    while (step_row(use.get(), "read the rolled-up days"))
      out.push_back({sqlite3_column_int64(use.get(), 0), sqlite3_column_int64(use.get(), 1)});
    return out;
  };
  if (read_transactions == 0) return read(from_ms, to_ms);
  if (!days)
    days = std::make_unique<std::vector<DaySpan>>(
        read(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  auto first = std::lower_bound(days->begin(), days->end(), from_ms,
                                [](const DaySpan& a, int64_t t) { return a.from_ms < t; });
  std::vector<DaySpan> out;
  for (auto it = first; it != days->end() && it->to_ms <= to_ms; ++it) out.push_back(*it);
  return out;
}

uint32_t Store::last_seq(const std::string& cid, uint32_t boot) const {
  StmtUse use(impl_->stmt(kLastSeq));
  impl_->bind_text(use.get(), 1, cid);
  impl_->bind_int(use.get(), 2, boot);
  if (!impl_->step_row(use.get(), "last_seq")) return 0;
  return static_cast<uint32_t>(sqlite3_column_int64(use.get(), 0));  // NULL (no rows) reads as 0
}

int64_t Store::next_outbox_ord() {
  if (next_outbox_ord_ == 0) {
    StmtUse use(impl_->stmt(kOutboxMaxOrd));
    next_outbox_ord_ = impl_->step_row(use.get(), "max outbox ord") ? sqlite3_column_int64(use.get(), 0) : 1;
  }
  return next_outbox_ord_++;
}

int64_t Store::newest_time_ms() const {
  StmtUse use(impl_->stmt(kNewestTime));
  if (!impl_->step_row(use.get(), "newest_time")) return 0;
  return sqlite3_column_int64(use.get(), 0);
}

std::optional<SampleRow> Store::latest_sample(const std::string& cid) const {
  StmtUse use(impl_->stmt(kLatestSample));
  impl_->bind_text(use.get(), 1, cid);
  if (!impl_->step_row(use.get(), "latest_sample")) return std::nullopt;
  SampleRow r;
  Impl::read_bucket(use.get(), r);
  return r;
}

std::vector<SampleRow> Store::samples(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  StmtUse use(impl_->stmt(kSamplesRange));
  impl_->bind_text(use.get(), 1, cid);
  impl_->bind_int(use.get(), 2, from_ms);
  impl_->bind_int(use.get(), 3, to_ms);
  std::vector<SampleRow> out;
  while (impl_->step_row(use.get(), "samples")) {
    SampleRow r;
    Impl::read_bucket(use.get(), r);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<EventRow> Store::events(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  const bool all = cid.empty();
  StmtUse use(impl_->stmt(all ? kEventsAll : kEventsCid));
  int i = 1;
  if (!all) impl_->bind_text(use.get(), i++, cid);
  impl_->bind_int(use.get(), i++, from_ms);
  impl_->bind_int(use.get(), i, to_ms);
  std::vector<EventRow> out;
  while (impl_->step_row(use.get(), "events")) out.push_back(Impl::read_event(use.get()));
  return out;
}

size_t Store::count_samples(const std::string& cid) const {
  const bool all = cid.empty();
  StmtUse use(impl_->stmt(all ? kCountAll : kCountCid));
  if (!all) impl_->bind_text(use.get(), 1, cid);
  if (!impl_->step_row(use.get(), "count_samples")) return 0;
  return static_cast<size_t>(sqlite3_column_int64(use.get(), 0));
}

std::vector<std::string> Store::socket_cids() const {
  StmtUse use(impl_->stmt(kSocketsAll));
  std::vector<std::string> out;
  while (impl_->step_row(use.get(), "read sockets")) out.push_back(Impl::text(use.get(), 1));
  return out;
}

std::vector<EnergyStateRow> Store::energy_states() const {
  StmtUse use(impl_->stmt(kEnergyStates));
  sqlite3_stmt* s = use.get();
  std::vector<EnergyStateRow> out;
  while (impl_->step_row(s, "energy_states")) {
    EnergyStateRow r;
    r.cid = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    r.boot = static_cast<uint32_t>(sqlite3_column_int64(s, 1));
    r.seq = static_cast<uint32_t>(sqlite3_column_int64(s, 2));
    r.ts_ms = sqlite3_column_int64(s, 3);
    r.energy_mwh = static_cast<uint64_t>(sqlite3_column_int64(s, 4));
    r.energy_epoch = static_cast<uint16_t>(sqlite3_column_int64(s, 5));
    r.total_mwh = sqlite3_column_int64(s, 6);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<BucketRow> Store::buckets(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  StmtUse use(impl_->stmt(kBucketsRange));
  sqlite3_stmt* s = use.get();
  impl_->bind_text(s, 1, cid);
  impl_->bind_int(s, 2, from_ms);
  impl_->bind_int(s, 3, to_ms);
  std::vector<BucketRow> out;
  while (impl_->step_row(s, "buckets")) {
    BucketRow b;
    Impl::read_bucket(s, b);
    out.push_back(std::move(b));
  }
  impl_->tail_rows(cid, 900'000, from_ms, to_ms, [&](const BucketRow& b) { out.push_back(b); });
  return out;
}

int64_t Store::energy_sum(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  // The rolled-up days inside [from_ms, to_ms) from energy_days (a row a day), the rest around and
  // between them from the hours, quarter-hours and samples.
  const std::vector<DaySpan> days = impl_->days_in(from_ms, to_ms);
  if (days.empty()) return range_energy(cid, from_ms, to_ms);
  int64_t sum = 0;
  {
    StmtUse use(impl_->stmt(kDaysEnergy));
    impl_->bind_text(use.get(), 1, cid);
    impl_->bind_int(use.get(), 2, days.front().from_ms);
    impl_->bind_int(use.get(), 3, days.back().from_ms);
    if (impl_->step_row(use.get(), "energy of days")) sum = sqlite3_column_int64(use.get(), 0);
  }
  int64_t cursor = from_ms;
  for (const DaySpan& day : days) {
    if (day.from_ms > cursor) sum += range_energy(cid, cursor, day.from_ms);
    cursor = day.to_ms;
  }
  if (cursor < to_ms) sum += range_energy(cid, cursor, to_ms);
  return sum;
}

int64_t Store::range_energy(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  // The whole UTC hours inside [from_ms, to_ms): [hours_from, hours_to), empty if there are none.
  constexpr int64_t kHour = 3'600'000;
  auto floor_hour = [](int64_t t) { return t - ((t % kHour) + kHour) % kHour; };
  // Clamped so the rounding cannot overflow (all_time_total passes the int64 limits).
  const int64_t from_c = std::max(from_ms, std::numeric_limits<int64_t>::min() / 2),
                to_c = std::min(to_ms, std::numeric_limits<int64_t>::max() / 2);
  int64_t hours_from = floor_hour(from_c);
  if (hours_from < from_c) hours_from += kHour;
  int64_t hours_to = floor_hour(to_c);
  if (hours_to <= hours_from) hours_from = hours_to = std::max(from_ms, to_ms);
  StmtUse use(impl_->stmt(kEnergySum));
  impl_->bind_text(use.get(), 1, cid);
  impl_->bind_int(use.get(), 2, from_ms);
  impl_->bind_int(use.get(), 3, to_ms);
  impl_->bind_int(use.get(), 4, hours_from);
  impl_->bind_int(use.get(), 5, hours_to);
  // The samples of the buckets with from_ms <= start_ms < to_ms: [ceil(from_ms), ceil(to_ms)).
  constexpr int64_t kQuarter = 900'000;
  auto ceil_quarter = [](int64_t t) {
    const int64_t r = ((t % kQuarter) + kQuarter) % kQuarter;
    return r == 0 ? t : t - r + kQuarter;
  };
  // In a snapshot the samples not rolled up yet come from its tail (the SQL's sample range left
  // empty); outside one the SQL reads them.
  const bool snapshot = impl_->read_transactions > 0;
  impl_->bind_int(use.get(), 6, ceil_quarter(from_c));
  impl_->bind_int(use.get(), 7, snapshot ? ceil_quarter(from_c) : ceil_quarter(to_c));
  if (!impl_->step_row(use.get(), "energy_sum")) return 0;
  const int64_t sum = sqlite3_column_int64(use.get(), 0);
  return snapshot ? sum + impl_->tail_energy(cid, ceil_quarter(from_c), ceil_quarter(to_c)) : sum;
}

Store::ReadTransaction::ReadTransaction(const Store& store) : store_(store) {
  Impl& d = *store_.impl_;
  d.exec("BEGIN", "begin read transaction");
  try {
    d.user_version();  // the first read fixes the snapshot (a deferred BEGIN reads nothing yet)
  } catch (...) {
    d.rollback_quietly();
    throw;
  }
  if (d.read_transactions++ == 0) d.forget_snapshot();  // one read before the snapshot may be older
}

Store::ReadTransaction::~ReadTransaction() {
  Impl& d = *store_.impl_;
  if (--d.read_transactions == 0) d.forget_snapshot();
  d.rollback_quietly();  // a read transaction has nothing to commit
}

}  // namespace pb::store
