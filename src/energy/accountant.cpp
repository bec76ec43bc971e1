#include "plugbridge/energy/accountant.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "plugbridge/common/log.hpp"

namespace pb::energy {

namespace {

// Largest increment (mWh) a socket can plausibly report after elapsed_ms: max power over the
// elapsed time plus 10 s, plus 1 Wh for rounding and timestamp jitter. mWh = W * ms / 3600.
int64_t plausible_limit_mwh(uint32_t max_power_w, int64_t elapsed_ms) {
  const int64_t ms = std::max<int64_t>(elapsed_ms, 0) + 10'000;
  return static_cast<int64_t>(max_power_w) * ms / 3600 + 1000;
}

// The quantities the meter measured go into the sample; one it did not (its valid flag clear, or all
// three while it sees no mains) is left out, not counted as 0. The energy does not depend on them.
void add_sample(store::BucketUpdate& b, const store::ReadingRow& r) {
  const bool mains = (r.flags & kNoMainsFlag) == 0;
  if (mains && (r.flags & kVoltageValidFlag) != 0) {
    store::merge_min(b.voltage_min_mv, r.voltage_mv);
    store::merge_max(b.voltage_max_mv, r.voltage_mv);
  }
  if (mains && (r.flags & kCurrentValidFlag) != 0) store::merge_max(b.current_max_ua, r.current_ua);
  if (!mains || (r.flags & kPowerValidFlag) == 0) return;
  const int64_t p = r.power_mw;
  if (b.samples == 0) {
    b.power_min_mw = b.power_max_mw = p;
  } else {
    b.power_min_mw = std::min(b.power_min_mw, p);
    b.power_max_mw = std::max(b.power_max_mw, p);
  }
  ++b.samples;
  b.power_sum_mw += p;
}

// The energy of an interval that crosses quarter-hours while readings are missing from it (merged
// by the socket while it could not reach the gateway, lost with a crashed gateway's last commit):
// shared over the quarter-hours in proportion to their part of the interval, as the socket's mean
// power over it. Each quarter-hour's share goes to the sample at its start (the first one's to the
// sample of the interval's start); returns what is left for the quarter-hour of the closing reading.
int64_t spread_over_gap(Pending::Samples& samples, const std::string& cid, int64_t from_ms, int64_t to_ms,
                        int64_t delta, int64_t sample_ms) {
  const auto elapsed = static_cast<double>(to_ms - from_ms);
  int64_t given = 0;
  for (int64_t q = bucket_start(from_ms); q < bucket_start(to_ms); q += kBucketMs) {
    // Cumulative shares, rounded down: they add up to delta exactly, none is negative.
    const auto upto = static_cast<int64_t>(
        std::floor(static_cast<double>(delta) * static_cast<double>(q + kBucketMs - from_ms) / elapsed));
    const int64_t share = std::min(upto, delta) - given;
    if (share <= 0) continue;
    const int64_t key = std::max(floor_to(from_ms, sample_ms), q);
    store::BucketUpdate& b = samples[{cid, key}];
    b.cid = cid;
    b.start_ms = key;
    b.energy_mwh += share;
    given += share;
  }
  return delta - given;
}

}  // namespace

void Accountant::load(const store::Store& store) {
  states_.clear();
  for (store::EnergyStateRow& s : store.energy_states()) states_[s.cid] = std::move(s);
}

Prepared Accountant::prepare(const std::vector<store::ReadingRow>& readings) const {
  // Record order per socket, whatever order the batch came in.
  std::vector<const store::ReadingRow*> order;
  order.reserve(readings.size());
  for (const store::ReadingRow& r : readings) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(), [](const store::ReadingRow* a, const store::ReadingRow* b) {
    return std::tie(a->cid, a->boot, a->seq) < std::tie(b->cid, b->boot, b->seq);
  });
  Pending p;
  for (const store::ReadingRow* r : order) add(p, *r);
  return p.prepared();
}

Prepared Pending::prepared() const {
  Prepared out;
  out.update.samples.reserve(samples_.size());
  for (const auto& [key, b] : samples_) out.update.samples.push_back(b);
  std::sort(out.update.samples.begin(), out.update.samples.end(),
            [](const store::BucketUpdate& a, const store::BucketUpdate& b) {
              return std::tie(a.cid, a.start_ms) < std::tie(b.cid, b.start_ms);
            });
  out.update.states.reserve(changed_.size());
  for (const auto& [cid, st] : changed_) out.update.states.push_back(st);
  std::sort(out.update.states.begin(), out.update.states.end(),
            [](const store::EnergyStateRow& a, const store::EnergyStateRow& b) { return a.cid < b.cid; });
  out.events = events_;
  out.accepted_mwh = accepted_mwh_;
  out.out_of_range = out_of_range_;
  return out;
}

void Accountant::add(Pending& p, const store::ReadingRow& r) const {
  ++p.readings_;
  if ((r.flags & kMeterOkFlag) == 0) return;  // unavailable: no energy, baseline unchanged
  // The counter wraps at kWrapMwh (docs/lan-protocol.md): a value past it is not a measurement. Taken
  // as one it would make the wrap arithmetic overflow and the energy negative.
  if (r.energy_mwh >= kWrapMwh) {
    ++p.out_of_range_;
    if (warned_range_.insert(r.cid).second)
      PB_LOG(Warning, "energy") << r.cid << ": ignoring readings whose energy counter (" << r.energy_mwh
                                << " mWh) is past the counter's range (" << kWrapMwh
                                << " mWh); said once per socket";
    return;
  }

  const store::EnergyStateRow* prev = nullptr;
  auto changed = p.changed_.find(r.cid);
  if (changed != p.changed_.end()) {
    prev = &changed->second;
  } else if (auto st = states_.find(r.cid); st != states_.end()) {
    prev = &st->second;
  }
  // Duplicates, resends and out-of-order records: the counter of a later record already
  // contains their energy.
  if (prev && std::tie(r.boot, r.seq) <= std::tie(prev->boot, prev->seq)) return;

  int64_t delta = 0;
  if (prev) {
    const uint32_t max_power_w = options_.max_power_w_for(r.cid);
    const int64_t limit = plausible_limit_mwh(max_power_w, r.ts_ms - prev->ts_ms);
    const auto old_counter = static_cast<int64_t>(prev->energy_mwh);
    const auto new_counter = static_cast<int64_t>(r.energy_mwh);
    const auto epoch_step = static_cast<uint16_t>(r.energy_epoch - prev->energy_epoch);
    if (epoch_step == 0) {
      // Going down without a new epoch (e.g. a reboot from an older persisted value): count
      // nothing and re-base, so nothing is invented when it climbs back.
      delta = std::max<int64_t>(new_counter - old_counter, 0);
    } else if (epoch_step == 1 && static_cast<int64_t>(kWrapMwh) - old_counter + new_counter <= limit) {
      delta = static_cast<int64_t>(kWrapMwh) - old_counter + new_counter;  // 10 000 kWh wrap
    } else {
      delta = new_counter;  // factory reset: the new epoch counts from 0
    }
    if (delta > limit) {
      const int64_t seconds = (r.ts_ms - prev->ts_ms) / 1000;
      PB_LOG(Warning, "energy") << r.cid << ": rejected an implausible jump of " << delta << " mWh in "
                                << seconds << " s (counter " << prev->energy_mwh << "/" << prev->energy_epoch
                                << " -> " << r.energy_mwh << "/" << r.energy_epoch << ", limit "
                                << max_power_w << " W)";
      p.events_.push_back({r.cid, r.ts_ms, "rejected_jump", std::nullopt, std::nullopt, delta,
                           "counter " + std::to_string(prev->energy_mwh) + "/" +
                               std::to_string(prev->energy_epoch) + " -> " + std::to_string(r.energy_mwh) +
                               "/" + std::to_string(r.energy_epoch) + " in " + std::to_string(seconds) +
                               " s, limit " + std::to_string(max_power_w) + " W"});
      delta = 0;
    }
  }

  int64_t own = delta;
  if (prev && delta > 0 && r.ts_ms - prev->ts_ms > options_.sample_ms &&
      r.ts_ms - prev->ts_ms <= kMaxSpreadMs && bucket_start(prev->ts_ms) != bucket_start(r.ts_ms))
    own = spread_over_gap(p.samples_, r.cid, prev->ts_ms, r.ts_ms, delta, options_.sample_ms);
  const int64_t start = floor_to(r.ts_ms, options_.sample_ms);
  store::BucketUpdate& b = p.samples_[{r.cid, start}];
  b.cid = r.cid;
  b.start_ms = start;
  b.energy_mwh += own;
  add_sample(b, r);
  p.accepted_mwh_ += delta;

  const int64_t total = (prev ? prev->total_mwh : 0) + delta;
  store::EnergyStateRow next{r.cid, r.boot, r.seq, r.ts_ms, r.energy_mwh, r.energy_epoch, total};
  if (changed != p.changed_.end())
    changed->second = std::move(next);
  else
    p.changed_.emplace(r.cid, std::move(next));
}

void Accountant::committed(const Prepared& p) {
  for (const store::EnergyStateRow& s : p.update.states) states_[s.cid] = s;
}

std::optional<store::EnergyStateRow> Accountant::state(const std::string& cid) const {
  auto it = states_.find(cid);
  if (it == states_.end()) return std::nullopt;
  return it->second;
}

int64_t Accountant::total_mwh(const std::string& cid) const {
  auto it = states_.find(cid);
  return it == states_.end() ? 0 : it->second.total_mwh;
}

}  // namespace pb::energy
