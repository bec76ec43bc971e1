// The read API (reader.hpp): the queries of the CLI, on the connection of a Store.
#include "plugbridge/store/reader.hpp"

#include "store_impl.hpp"

namespace pb::store {

using namespace detail;

namespace {

// What Store::Impl::read_bucket_values reads.
constexpr const char* kBucketValues =
    "start_ms, energy_mwh, samples, power_sum_mw, coalesce(power_min_mw, 0), coalesce(power_max_mw, 0), "
    "voltage_min_mv, voltage_max_mv, current_max_ua";

// Binds ?1 = from_ms, ?2 = to_ms and, unless cid is "" (all sockets), ?3 = cid.
template <class Impl>
void bind_range(Impl& d, sqlite3_stmt* s, const std::string& cid, int64_t from_ms, int64_t to_ms) {
  d.bind_int(s, 1, from_ms);
  d.bind_int(s, 2, to_ms);
  if (!cid.empty()) d.bind_text(s, 3, cid);
}

}  // namespace

Reader::Reader(const std::string& path)
    : owned_(std::make_unique<Store>(path, StoreOptions{.read_only = true})), store_(*owned_) {}

Reader::Reader(const Store& store) : store_(store) {}

Reader::~Reader() = default;

const std::string& Reader::path() const {
  return store_.path();
}

Reader::Snapshot::Snapshot(const Reader& reader) : transaction_(reader.store_) {}

Reader::Snapshot::~Snapshot() = default;

std::vector<EnergyStateRow> Reader::energy_states() const {
  return store_.energy_states();
}

std::optional<SampleRow> Reader::latest_sample(const std::string& cid) const {
  return store_.latest_sample(cid);
}

int64_t Reader::energy_sum(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  return store_.energy_sum(cid, from_ms, to_ms);
}

std::vector<EventRow> Reader::events(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  return store_.events(cid, from_ms, to_ms);
}

void Reader::each_row(Rollup table, const std::string& cid, int64_t from_ms, int64_t to_ms,
                      const std::function<void(const BucketRow&)>& fn, bool energy_only) const {
  Store::Impl& d = *store_.impl_;
  const bool hour = table == Rollup::kHour, day = table == Rollup::kDay;
  const Slot slot = day    ? (energy_only ? kRowsDayEnergy : kRowsDay)
                    : hour ? (energy_only ? kRowsHourEnergy : kRowsHour)
                           : (energy_only ? kRowsQuarterEnergy : kRowsQuarter);
  StmtUse use(d.stmt(slot, [&] {
    return std::string("SELECT ") + (energy_only ? "start_ms, energy_mwh" : kBucketValues) + " FROM " +
           (day    ? "energy_days"
            : hour ? "energy_hours"
                   : "energy_buckets") +
           " WHERE cid = ?1 AND start_ms >= ?2 AND start_ms < ?3 ORDER BY start_ms";
  }));
  sqlite3_stmt* s = use.get();
  d.bind_text(s, 1, cid);
  d.bind_int(s, 2, from_ms);
  d.bind_int(s, 3, to_ms);
  BucketRow b;
  b.cid = cid;
  while (d.step_row(s, "read history")) {
    if (energy_only) {
      b.start_ms = sqlite3_column_int64(s, 0);
      b.energy_mwh = sqlite3_column_int64(s, 1);
    } else {
      Store::Impl::read_bucket_values(s, 0, b);
    }
    fn(b);
  }
  if (day) return;  // a day is listed once all its samples are rolled up
  d.tail_rows(cid, hour ? 3'600'000 : 900'000, from_ms, to_ms, [&](const BucketRow& t) {
    if (!energy_only) return fn(t);
    BucketRow e;
    e.cid = t.cid;
    e.start_ms = t.start_ms;
    e.energy_mwh = t.energy_mwh;
    fn(e);
  });
  // The reset (StmtUse) ends the read transaction of this scan, unless a Snapshot holds one.
}

std::vector<DaySpan> Reader::rolled_days(int64_t from_ms, int64_t to_ms) const {
  return store_.rolled_days(from_ms, to_ms);
}

void Reader::each_bucket(const std::string& cid, int64_t from_ms, int64_t to_ms,
                         const std::function<void(const BucketRow&)>& fn) const {
  Store::Impl& d = *store_.impl_;
  const bool all = cid.empty();
  StmtUse use(d.stmt(all ? kExportBucketsAll : kExportBucketsCid, [all] {
    return std::string("SELECT cid, ") + kBucketValues + " FROM energy_buckets " +
           (all ? "WHERE start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms"
                : "WHERE cid = ?3 AND start_ms >= ?1 AND start_ms < ?2 ORDER BY start_ms");
  }));
  bind_range(d, use.get(), cid, from_ms, to_ms);
  BucketRow b;
  while (d.step_row(use.get(), "export buckets")) {
    Store::Impl::read_bucket(use.get(), b);
    fn(b);
  }
  d.tail_rows(cid, 900'000, from_ms, to_ms, fn);
}

size_t Reader::count_samples(const std::string& cid, int64_t from_ms, int64_t to_ms) const {
  Store::Impl& d = *store_.impl_;
  const bool all = cid.empty();
  StmtUse use(d.stmt(all ? kExportCountAll : kExportCountCid, [all] {
    return std::string(
        all ? "SELECT count(*) FROM samples WHERE start_ms >= ?1 AND start_ms < ?2"
            : "SELECT count(*) FROM samples WHERE start_ms >= ?1 AND start_ms < ?2 AND socket = "
              "(SELECT id FROM sockets WHERE cid = ?3)");
  }));
  bind_range(d, use.get(), cid, from_ms, to_ms);
  if (!d.step_row(use.get(), "count samples")) return 0;
  return static_cast<size_t>(sqlite3_column_int64(use.get(), 0));
}

void Reader::each_sample(const std::string& cid, int64_t from_ms, int64_t to_ms,
                         const std::function<bool(const SampleRow&)>& fn) const {
  Store::Impl& d = *store_.impl_;
  const bool all = cid.empty();
  StmtUse use(d.stmt(all ? kExportSamplesAll : kExportSamplesCid, [all] {
    return std::string("SELECT k.cid, s.start_ms, ") + kValueColumns +
           " FROM samples s JOIN sockets k ON k.id = s.socket WHERE s.start_ms >= ?1 AND s.start_ms < ?2 " +
           (all ? "ORDER BY s.start_ms, s.socket" : "AND k.cid = ?3 ORDER BY s.start_ms");
  }));
  bind_range(d, use.get(), cid, from_ms, to_ms);
  SampleRow r;
  while (d.step_row(use.get(), "export samples")) {
    Store::Impl::read_bucket(use.get(), r);
    if (!fn(r)) return;
  }
}

}  // namespace pb::store
