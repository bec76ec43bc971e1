// Retention: raw readings are kept for retention.raw_days; the daemon prunes older ones in small
// batches (the 15-minute buckets, their hourly rollup and the events are kept forever).
#include "plugbridge/store/store.hpp"
#include "store_impl.hpp"

namespace pb::store {

size_t Store::prune_readings(const std::string& cid, int64_t before_ms, size_t limit) {
  Impl& d = *impl_;
  // Uses readings_cid_ts; the LIMIT keeps each delete (and the write lock) short.
  detail::StmtUse use(d.stmt(detail::kPruneReadings, [] {
    return std::string(
        "DELETE FROM readings WHERE (cid, boot, seq) IN (SELECT cid, boot, seq FROM readings "
        "WHERE cid = ?1 AND ts_ms < ?2 ORDER BY ts_ms LIMIT ?3)");
  }));
  d.bind_text(use.get(), 1, cid);
  d.bind_int(use.get(), 2, before_ms);
  d.bind_int(use.get(), 3, static_cast<int64_t>(limit));
  if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("prune readings");
  return static_cast<size_t>(sqlite3_changes(d.db));
}

std::optional<int64_t> Store::oldest_reading_ms(const std::string& cid) const {
  Impl& d = *impl_;
  detail::StmtUse use(d.stmt(detail::kOldestReading, [] {
    return std::string("SELECT min(ts_ms) FROM readings WHERE cid = ?");  // readings_cid_ts
  }));
  d.bind_text(use.get(), 1, cid);
  if (!d.step_row(use.get(), "oldest reading") || sqlite3_column_type(use.get(), 0) == SQLITE_NULL)
    return std::nullopt;
  return sqlite3_column_int64(use.get(), 0);
}

int64_t Store::used_bytes() const {
  Impl& d = *impl_;
  detail::StmtUse use(d.stmt(detail::kUsedPages, [] {
    return std::string(
        "SELECT (p.page_count - f.freelist_count) * s.page_size "
        "FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s");
  }));
  if (!d.step_row(use.get(), "used pages")) return 0;
  return sqlite3_column_int64(use.get(), 0);
}

}  // namespace pb::store
