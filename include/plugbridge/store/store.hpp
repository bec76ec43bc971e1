// SQLite history of socket samples, energy and events (plain SQLite3 C API).
// One Store = one connection; a Store must be used from one thread at a time. Several Stores
// (processes or threads) may open the same file: WAL lets readers run while one writer commits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "plugbridge/store/migrations.hpp"

namespace pb::store {

class StoreError : public std::runtime_error {
 public:
  explicit StoreError(const std::string& what, int code = 0) : std::runtime_error(what), code_(code) {}
  // SQLite's extended result code; 0 for a problem the store found itself.
  int code() const { return code_; }
  // The file system is full (SQLITE_FULL): the same write can succeed once space is freed.
  bool disk_full() const;

 private:
  int code_ = 0;
};

// What PRAGMA quick_check / integrity_check found.
struct IntegrityReport {
  bool ok = true;                     // nothing wrong in the part that was checked
  bool complete = true;               // false: stopped at the time budget, the rest was not checked
  std::vector<std::string> problems;  // SQLite's own lines (at most 20), or why the check failed
  std::chrono::milliseconds took{0};
};

// The error says the database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB).
bool damaged(const StoreError& e);
// What to tell the user about a damaged database: the file, what is wrong, the commands that help.
std::string damaged_message(const std::string& path, const std::string& detail);

// Where a database's bytes are (SQLite's dbstat table; read-only, any schema version).
struct DbStats {
  struct Table {
    std::string name;
    int64_t bytes = 0;  // its pages and those of its indexes
    int64_t rows = -1;  // -1 for SQLite's own (sqlite_schema...)
  };
  struct Socket {
    std::string cid;
    int64_t samples = 0;                // raw samples
    int64_t first_ms = 0, last_ms = 0;  // start of its first and last sample (0 when none)
    int64_t buckets = 0;                // 15-minute energy buckets
  };
  int64_t file_bytes = 0, wal_bytes = 0, free_pages_bytes = 0;
  int schema_version = 0;
  std::vector<Table> tables;    // largest first
  std::vector<Socket> sockets;  // by cid
};
DbStats db_stats(const std::string& path);

// What recover_file copied, per table.
struct RecoverReport {
  struct Table {
    std::string name;
    int64_t rows = 0;      // rows copied
    bool damaged = false;  // a scan stopped at damage: rows between the readable ends are lost
  };
  std::vector<Table> tables;
};

// Copies every row of src that can still be read into a new database file dst (which must not
// exist): the schema as src has it (tables, then rows, then indexes and triggers, so triggers do
// not count copied rows twice), user_version included. Each table is read in key order from both
// ends, so a damaged page loses the rows on it (and those between two damaged pages), not the rest.
// Throws StoreError when src's schema cannot be read.
RecoverReport recover_file(const std::string& src, const std::string& dst);

// Checks the database file at path without opening it as a Store (any schema version; read-only).
// full: integrity_check (also indexes against tables) instead of quick_check.
IntegrityReport check_file(const std::string& path, std::chrono::milliseconds budget, bool full = false);

struct ReadingRow {
  std::string cid;
  uint32_t boot = 0;
  uint32_t seq = 0;
  int64_t ts_ms = 0;
  uint8_t flags = 0;
  uint32_t voltage_mv = 0, current_ua = 0, power_mw = 0, apparent_mva = 0;
  uint16_t power_factor_e4 = 0;
  uint64_t energy_mwh = 0;  // stored as SQLite INTEGER (int64); values above 2^63 are not expected
  uint16_t energy_epoch = 0;

  bool operator==(const ReadingRow&) const = default;
};

struct EventRow {
  std::string cid;
  int64_t ts_ms = 0;
  std::string kind;  // "relay", "over_current", "command", ...
  // Set for events that came from the socket (dedup key), empty for gateway events.
  std::optional<uint32_t> boot, seq;
  int64_t value = 0;
  std::string detail;  // short JSON/text (cause, request_id, code...)

  bool operator==(const EventRow&) const = default;
};

// A local day, [from_ms, to_ms) in unix ms (a multiple of 900000 each).
struct DaySpan {
  int64_t from_ms = 0, to_ms = 0;
  bool operator==(const DaySpan&) const = default;
};

struct CommitResult {
  size_t samples_written = 0, events_inserted = 0, events_duplicate = 0;
};

// Energy accounting rows (tables energy_buckets / energy_state, see docs/schema.md).
// A bucket update is added to the stored bucket (sums added, min/max merged).
struct BucketUpdate {
  std::string cid;
  int64_t start_ms = 0;  // multiple of 900000
  int64_t energy_mwh = 0;
  int64_t samples = 0;  // readings whose power the meter measured; mean power = power_sum_mw / samples
  int64_t power_sum_mw = 0;
  // Meaningful only when samples > 0 (stored as NULL otherwise).
  int64_t power_min_mw = 0, power_max_mw = 0;
  // Unset (NULL) when no reading of the interval measured the voltage / the current.
  std::optional<int64_t> voltage_min_mv{}, voltage_max_mv{}, current_max_ua{};

  bool operator==(const BucketUpdate&) const = default;
};
using BucketRow = BucketUpdate;  // a stored bucket reads back in the same shape

// The minimum / maximum of an optional extreme and an optional value (unset: nothing measured).
inline void merge_min(std::optional<int64_t>& into, const std::optional<int64_t>& v) {
  if (v && (!into || *v < *into)) into = v;
}
inline void merge_max(std::optional<int64_t>& into, const std::optional<int64_t>& v) {
  if (v && (!into || *v > *into)) into = v;
}

struct EnergyStateRow {
  std::string cid;
  uint32_t boot = 0, seq = 0;
  int64_t ts_ms = 0;
  uint64_t energy_mwh = 0;
  uint16_t energy_epoch = 0;
  int64_t total_mwh = 0;

  bool operator==(const EnergyStateRow&) const = default;
};

// A raw sample (table samples): the readings of one socket in one interval of
// history.raw_resolution_s, in the shape of a bucket (start_ms is the interval's start).
using SampleRow = BucketUpdate;

struct EnergyUpdate {
  // Added to the stored sample of (cid, start_ms); a sample of an interval already rolled up
  // (start_ms < rolled_up_ms()) is added to its bucket and hour as well.
  std::vector<BucketUpdate> samples;
  std::vector<EnergyStateRow> states;  // replace the stored state of that cid
};

// One row of the uplink outbox (table outbox, docs/schema.md): a properties/report not yet
// acknowledged by the broker.
struct OutboxRow {
  int64_t ord = 0;  // creation order, gateway-wide (all uplinks); the row's identity
  std::string cid;
  int dp = 0;
  bool event = false;  // events are kept in order; a state row is the latest value of (cid, dp)
  int64_t t_ms = 0;
  std::string value;   // JSON text
  std::string uplink;  // "" = the Tuya edge; else a device-direct uplink's name

  bool operator==(const OutboxRow&) const = default;
};

// A change to the outbox; a list of them is applied in order. An insert of an ord that is already
// stored is ignored.
struct OutboxChange {
  bool remove = false;  // delete the row row.ord (a no-op if it is not stored); else insert row
  OutboxRow row;
};

struct StoreOptions {
  bool read_only = false;
  // PRAGMA synchronous: "FULL" (default: a committed batch survives power loss, which the
  // cumulative Ack to the socket relies on), "NORMAL", "OFF" (tests/benchmarks only).
  std::string synchronous = "FULL";
  int busy_timeout_ms = 5000;
  // Test hook: migrations to apply instead of the embedded ones (must be numbered 1..N).
  const std::vector<Migration>* migrations = nullptr;
};

class Store {
 public:
  // Opens/creates the database, sets WAL, synchronous, busy_timeout and foreign keys, then applies
  // pending migrations, each in its own transaction. Refuses a database whose schema is newer than
  // this binary knows. A read-only Store never creates or migrates; it requires the latest schema.
  explicit Store(const std::string& path, bool read_only = false);
  Store(const std::string& path, const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int schema_version() const;
  static int latest_schema_version();

  // One transaction: events (a socket event whose (cid, boot, seq) is already stored, or repeated in
  // the batch, is counted as a duplicate and ignored; gateway events are always inserted), samples
  // and energy states, outbox changes.
  CommitResult commit(const std::vector<EventRow>& events, const EnergyUpdate& energy = {},
                      const std::vector<OutboxChange>& outbox = {});
  // Adds the samples with rolled_up_ms() <= start_ms < up_to_ms to energy_buckets and energy_hours
  // and moves the mark to up_to_ms (one transaction; up_to_ms a whole UTC hour, never going back).
  // Returns how many quarter-hour buckets it wrote (0: the mark is at up_to_ms or later already).
  size_t roll_up(int64_t up_to_ms);
  // Samples before this time are in the buckets and hours; readers add the later ones.
  int64_t rolled_up_ms() const;
  // Sums every socket's buckets of each day into energy_days and lists the day (history_days), in
  // order, one transaction per day. A day is taken only if it starts at or after the end of the last
  // day listed and ends at or before rolled_up_ms(); the first that does not stops it. Returns how
  // many days were rolled up.
  size_t roll_up_days(const std::vector<DaySpan>& days);
  // End of the last day listed (nullopt: none yet).
  std::optional<int64_t> days_rolled_up_to() const;
  // Start of the first bucket of any socket at or after from_ms (nullopt: none).
  std::optional<int64_t> next_bucket_ms(int64_t from_ms) const;
  // The days listed with from_ms <= start and end <= to_ms, by start.
  std::vector<DaySpan> rolled_days(int64_t from_ms, int64_t to_ms) const;

  // Outbox changes alone, in one transaction.
  void apply_outbox(const std::vector<OutboxChange>& changes);
  // Every outbox row of one uplink ("" = the Tuya edge), by ord.
  std::vector<OutboxRow> outbox_rows(const std::string& uplink = "") const;
  // A new outbox ord: above every stored one and every one handed out before (all uplinks share
  // them). Loop thread only.
  int64_t next_outbox_ord();

  // Every socket with history (a sample ever written), by cid.
  std::vector<std::string> socket_cids() const;
  // Energy accounting state of every socket that has one.
  std::vector<EnergyStateRow> energy_states() const;
  // Buckets with from_ms <= start_ms < to_ms, oldest first: those rolled up and those still made of
  // samples (see rolled_up_ms()).
  std::vector<BucketRow> buckets(const std::string& cid, int64_t from_ms, int64_t to_ms) const;
  // Sum of bucket energy (mWh) with from_ms <= start_ms < to_ms. Outside a ReadTransaction each call
  // reads the socket's samples not rolled up yet with SQL (a scan of all sockets' samples since the
  // mark); inside one they are read once for every call (many sockets: use one).
  int64_t energy_sum(const std::string& cid, int64_t from_ms, int64_t to_ms) const;
  // Retention (retention.cpp): deletes at most `limit` samples (of all sockets, oldest first) with
  // start_ms < before_ms and already rolled up (one short transaction); returns how many were
  // deleted. Buckets, hours and events are kept.
  size_t prune_samples(int64_t before_ms, size_t limit);
  // Start of the oldest sample of any socket (nullopt: none).
  std::optional<int64_t> oldest_sample_ms() const;
  // Bytes of the pages in use (the file's pages less its free list): what the size budget counts.
  // The file does not shrink when rows go; their pages are reused.
  int64_t used_bytes() const;

  // Highest committed record seq of that boot (the energy state's reading, the socket events), 0 if
  // none. This is the maximum, not the end of a gap-free prefix.
  uint32_t last_seq(const std::string& cid, uint32_t boot) const;
  // The newest time stored: of the newest accounted reading of any socket, the newest event or
  // outbox row (0 when none). A clock earlier than that without NTP saying so is not believed.
  int64_t newest_time_ms() const;
  std::optional<SampleRow> latest_sample(const std::string& cid) const;
  // Samples with from_ms <= start_ms < to_ms, oldest first.
  std::vector<SampleRow> samples(const std::string& cid, int64_t from_ms, int64_t to_ms) const;
  std::vector<EventRow> events(const std::string& cid /* "" = all */, int64_t from_ms, int64_t to_ms) const;
  size_t count_samples(const std::string& cid = "") const;

  const std::string& path() const { return path_; }

  // Whether the file at path() is still the one this Store opened: nullopt, or what happened to it
  // (deleted, or replaced by another file). One stat(): cheap enough after every commit. Writes to a
  // deleted file are lost at close; they must not be acknowledged.
  std::optional<std::string> file_problem() const;
  // PRAGMA quick_check through this connection, stopped after budget.
  IntegrityReport quick_check(std::chrono::milliseconds budget) const;
  // PRAGMA wal_checkpoint(TRUNCATE): copies the WAL into the database and truncates it (frees the
  // WAL's disk space once no reader needs it). False if a reader kept it from finishing.
  bool checkpoint();
  // Stops what this connection runs now (from another thread: the one thing a Store allows from
  // any thread while it lives): the statement fails with SQLITE_INTERRUPT, its transaction rolls back.
  void interrupt();

  // One consistent view for several queries: while it lives, every read through this Store sees
  // the database as it was when the transaction started, whatever other connections commit
  // meanwhile (WAL). For readers (Reader::Snapshot); no commit() on this Store while one is open.
  class ReadTransaction {
   public:
    explicit ReadTransaction(const Store& store);
    ~ReadTransaction();
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

   private:
    const Store& store_;
  };

 private:
  friend class Reader;  // reads through this connection (reader.hpp)
  struct Impl;
  // energy_sum over [from_ms, to_ms) without the rolled-up days: hours, quarter-hours, samples.
  int64_t range_energy(const std::string& cid, int64_t from_ms, int64_t to_ms) const;
  std::string path_;
  std::unique_ptr<Impl> impl_;
  int64_t next_outbox_ord_ = 0;  // 0: not read yet
};

}  // namespace pb::store
