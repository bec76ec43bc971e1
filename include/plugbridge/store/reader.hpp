// The read API of the history database: every query a reader (the plugbridge CLI) runs, typed.
// The SQL lives in the store (reader.cpp), next to the schema it reads; a schema change is made
// there once. A Reader is a view over one Store connection, its own (opened read-only on a file)
// or a borrowed one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plugbridge/store/store.hpp"

namespace pb::store {

class Reader {
 public:
  // Opens path read-only; safe while the daemon writes (WAL). Refuses, like a read-only Store, a
  // schema newer than this build knows and one it would have to migrate. Throws StoreError.
  explicit Reader(const std::string& path);
  // Reads through store's connection; store must outlive the Reader. Implicit, so a Store is
  // accepted wherever a Reader is asked for (energy totals).
  Reader(const Store& store);  // NOLINT(google-explicit-constructor)
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::string& path() const;

  // While it lives, every query of this Reader sees the database as it was when it began,
  // whatever the daemon commits meanwhile: a command's rows and totals agree.
  class Snapshot {
   public:
    explicit Snapshot(const Reader& reader);
    ~Snapshot();
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;

   private:
    Store::ReadTransaction transaction_;
  };

  // Devices: the energy accounting state of every socket that has one (by cid), and the newest
  // stored sample of a socket.
  std::vector<EnergyStateRow> energy_states() const;
  std::optional<SampleRow> latest_sample(const std::string& cid) const;

  // Energy: mWh of the buckets with from_ms <= start_ms < to_ms (whole UTC hours from the hourly
  // rollup, the quarter-hours around them from energy_buckets, and the samples not rolled up yet).
  int64_t energy_sum(const std::string& cid, int64_t from_ms, int64_t to_ms) const;

  // Events with from_ms <= ts_ms < to_ms, oldest first (cid "" = all sockets).
  std::vector<EventRow> events(const std::string& cid, int64_t from_ms, int64_t to_ms) const;

  // History: rows of energy_buckets (kQuarter), of its hourly rollup energy_hours (kHour) or of the
  // local days rolled up (kDay: energy_days, see rolled_days) of one socket with from_ms <= start_ms
  // < to_ms, by start_ms; for quarter-hours and hours followed by the rows of the samples not rolled
  // up yet (the last hours). Statements stay prepared, so many short scans stay cheap.
  // energy_only: only start_ms and energy_mwh are read (the rest stays 0).
  enum class Rollup { kQuarter, kHour, kDay };
  void each_row(Rollup table, const std::string& cid, int64_t from_ms, int64_t to_ms,
                const std::function<void(const BucketRow&)>& fn, bool energy_only = false) const;

  // The local days rolled up with from_ms <= start and end <= to_ms, by start (for kDay scans: a
  // day's row covers exactly [from_ms, to_ms) of that day).
  std::vector<DaySpan> rolled_days(int64_t from_ms, int64_t to_ms) const;

  // Export: quarter-hour buckets with from_ms <= start_ms < to_ms by start_ms (cid "" = all
  // sockets; then several rows may share a start_ms), those made of samples not rolled up yet
  // last. NULL minima/maxima read as 0.
  void each_bucket(const std::string& cid, int64_t from_ms, int64_t to_ms,
                   const std::function<void(const BucketRow&)>& fn) const;
  // Export: raw samples with from_ms <= start_ms < to_ms, by time (then socket, in the order the
  // sockets were first stored); fn returns false to stop.
  size_t count_samples(const std::string& cid, int64_t from_ms, int64_t to_ms) const;
  void each_sample(const std::string& cid, int64_t from_ms, int64_t to_ms,
                   const std::function<bool(const SampleRow&)>& fn) const;

 private:
  std::unique_ptr<Store> owned_;
  const Store& store_;
};

}  // namespace pb::store
