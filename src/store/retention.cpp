// Retention: raw samples are kept for history.raw_days (and within history.max_db_mb); the daemon
// prunes older ones in small batches (the 15-minute buckets, their hourly rollup and the events are
// kept forever).
#include "plugbridge/store/store.hpp"
#include "store_impl.hpp"

namespace pb::store {

size_t Store::prune_samples(int64_t before_ms, size_t limit) {
  Impl& d = *impl_;
  // Oldest first along the primary key; the LIMIT keeps each delete (and the write lock) short.
  // Samples not rolled up yet stay whatever the cut-off: their energy is in no bucket.
  detail::StmtUse use(d.stmt(detail::kPruneSamples, [] {
    return std::string(
        "DELETE FROM samples WHERE (start_ms, socket) IN (SELECT start_ms, socket FROM samples "
        "WHERE start_ms < min(?1, coalesce((SELECT value FROM history_marks WHERE name = 'rolled_up_ms'), "
        "0)) "
        "ORDER BY start_ms LIMIT ?2)");
  }));
  d.bind_int(use.get(), 1, before_ms);
  d.bind_int(use.get(), 2, static_cast<int64_t>(limit));
  if (sqlite3_step(use.get()) != SQLITE_DONE) d.fail("prune samples");
  return static_cast<size_t>(sqlite3_changes(d.db));
}

std::optional<int64_t> Store::oldest_sample_ms() const {
  Impl& d = *impl_;
  detail::StmtUse use(d.stmt(detail::kOldestSample, [] {
    return std::string("SELECT min(start_ms) FROM samples");  // the first key
  }));
  if (!d.step_row(use.get(), "oldest sample") || sqlite3_column_type(use.get(), 0) == SQLITE_NULL)
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
