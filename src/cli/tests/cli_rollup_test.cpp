// History and energy from the hourly rollup against the quarter-hours.
#include <sqlite3.h>

#include "cli_fixture.hpp"
#include "plugbridge/energy/calendar.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::cli {
namespace {

using namespace test;
namespace fs = std::filesystem;
using json = nlohmann::json;

// The hourly rollup must give exactly what the quarter-hours give: every history period and
// energy sum is checked against a sum of Store::buckets. The buckets up to 10 Mar are written
// before migration 0003 (its backfill, over New York's spring DST change on 8 Mar), the later ones
// as samples: rolled up, added late to rolled-up buckets and hours, and not rolled up yet (read
// from the samples, from Berlin's DST change on 29 Mar on); also in a :45 zone. Then again with
// Berlin's local days rolled up.
TEST_F(CliTest, HistoryFromTheHourlyRollupEqualsTheQuarterHours) {
  const int64_t first = berlin("2026-02-27 00:00"), last = berlin("2026-04-03 00:00");
  const int64_t schema2_end = berlin("2026-03-10 00:00");
  std::mt19937 rng(7);
  auto random_buckets = [&](int percent, int64_t from, int64_t to) {
    store::EnergyUpdate up;
    for (const char* cid : {"kettle", "lamp"})
      for (int64_t t = from; t < to; t += 900000) {
        if (static_cast<int>(rng() % 100) >= percent) continue;
        store::BucketUpdate b;
        b.cid = cid;
        b.start_ms = t + static_cast<int64_t>(rng() % 15) * 60000;  // a minute of the quarter-hour
        b.energy_mwh = rng() % 300000;
        b.samples = rng() % 4 == 0 ? 0 : 1 + rng() % 90;
        if (b.samples > 0) {
          b.power_min_mw = rng() % 1000000;
          b.power_max_mw = b.power_min_mw + rng() % 1000000;
          b.power_sum_mw = b.samples * (b.power_min_mw + b.power_max_mw) / 2;
          const auto v = static_cast<int64_t>(220000 + rng() % 10000);
          b.voltage_min_mv = v;
          b.voltage_max_mv = v + static_cast<int64_t>(rng() % 10000);
          b.current_max_ua = static_cast<int64_t>(rng() % 5000000);
        }
        up.samples.push_back(b);
      }
    return up;
  };
  {
    const std::vector<store::Migration> before(store::embedded_migrations().begin(),
                                               store::embedded_migrations().begin() + 2);
    { store::Store v2(db_path(), store::StoreOptions{.migrations = &before}); }
    // Schema 2 has buckets, no samples: written as the daemon of then did.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
    sqlite3_stmt* ins = nullptr;
    ASSERT_EQ(
        sqlite3_prepare_v2(raw, "INSERT INTO energy_buckets VALUES (?,?,?,?,?,?,?,?,?,?)", -1, &ins, nullptr),
        SQLITE_OK);
    for (store::BucketUpdate& b : random_buckets(60, first, schema2_end).samples) {
      b.start_ms -= b.start_ms % 900000;
      sqlite3_bind_text(ins, 1, b.cid.c_str(), -1, SQLITE_TRANSIENT);
      int i = 2;
      for (const int64_t v : {b.start_ms, b.energy_mwh, b.samples, b.power_sum_mw})
        sqlite3_bind_int64(ins, i++, v);
      if (b.samples > 0)
        for (const int64_t v :
             {b.power_min_mw, b.power_max_mw, *b.voltage_min_mv, *b.voltage_max_mv, *b.current_max_ua})
          sqlite3_bind_int64(ins, i++, v);
      ASSERT_EQ(sqlite3_step(ins), SQLITE_DONE) << sqlite3_errmsg(raw);
      sqlite3_reset(ins);
      sqlite3_clear_bindings(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_close(raw);
  }
  {
    store::Store db(db_path());  // migrates to the rollup (backfilled) and to samples
    // No readings were stored: the mark is the hour after the newest bucket, so nothing after it
    // is in a bucket yet.
    EXPECT_GT(db.rolled_up_ms(), 0);
    EXPECT_TRUE(db.buckets("kettle", db.rolled_up_ms(), INT64_MAX).empty());
    db.commit({}, random_buckets(40, schema2_end, last));
    db.roll_up(berlin("2026-03-20 00:00"));
    // Before the mark: late, into the buckets and hours directly.
    db.commit({}, random_buckets(40, schema2_end, last));
    db.roll_up(berlin("2026-03-29 05:00"));
    db.commit({}, random_buckets(20, schema2_end, last));
    ASSERT_GT(db.count_samples(), 0u);
  }
  auto check = [&](const std::string& phase) {
    SCOPED_TRACE(phase);
    store::Store db(db_path(), store::StoreOptions{.read_only = true});

    for (const char* zone : {"Europe/Berlin", "America/New_York", "Asia/Kathmandu"}) {
      for (const char* by : {"hour", "day", "week", "month"}) {
        for (const char* from : {"2026-03-01", "2026-03-01 10:15"}) {
          for (const char* who : {"--all", "kettle"}) {
            SCOPED_TRACE(std::string(zone) + " --by " + by + " --from " + from + " " + who);
            auto r = run({"--tz", zone, "history", who, "--by", by, "--from", from, "--to", "2026-04-02",
                          "--format", "json"});
            ASSERT_EQ(r.code, 0) << r.err;
            const json doc = json::parse(r.out);
            ASSERT_GT(doc["periods"].size(), 0u);
            for (const json& p : doc["periods"]) {
              const int64_t start = p["start_ms"], end = p["end_ms"];
              int64_t mwh = 0, samples = 0, sum = 0, pmin = INT64_MAX, pmax = 0, vmin = INT64_MAX, vmax = 0,
                      imax = 0, sockets = 0;
              for (const char* cid : {"kettle", "lamp"}) {
                if (std::string(who) != "--all" && std::string(who) != cid) continue;
                const auto rows = db.buckets(cid, start, end);
                sockets += rows.empty() ? 0 : 1;
                for (const auto& b : rows) {
                  mwh += b.energy_mwh;
                  if (b.samples == 0) continue;
                  samples += b.samples;
                  sum += b.power_sum_mw;
                  pmin = std::min(pmin, b.power_min_mw);
                  pmax = std::max(pmax, b.power_max_mw);
                  vmin = std::min(vmin, b.voltage_min_mv.value_or(INT64_MAX));
                  vmax = std::max(vmax, b.voltage_max_mv.value_or(0));
                  imax = std::max(imax, b.current_max_ua.value_or(0));
                }
              }
              ASSERT_EQ(p["energy_mwh"], mwh) << p.dump();
              if (std::string(who) == "--all") {
                ASSERT_EQ(p["sockets"], sockets) << p.dump();
              } else {
                ASSERT_EQ(p["samples"], samples) << p.dump();
                if (samples == 0) {
                  ASSERT_TRUE(p["min_power_mw"].is_null()) << p.dump();
                  continue;
                }
                ASSERT_EQ(p["mean_power_mw"], sum / samples) << p.dump();
                ASSERT_EQ(p["min_power_mw"], pmin) << p.dump();
                ASSERT_EQ(p["max_power_mw"], pmax) << p.dump();
                ASSERT_EQ(p["min_voltage_mv"], vmin) << p.dump();
                ASSERT_EQ(p["max_voltage_mv"], vmax) << p.dump();
                ASSERT_EQ(p["max_current_ua"], imax) << p.dump();
              }
            }
          }
        }
      }
    }

    // Store::energy_sum (the energy command, DP 45/46) over ranges on and off the hour.
    std::mt19937_64 pick(11);
    for (int i = 0; i < 300; ++i) {
      int64_t a =
          first - 7200000 + static_cast<int64_t>(pick() % static_cast<uint64_t>(last - first + 14400000));
      int64_t b = a + static_cast<int64_t>(pick() % (i % 3 == 0 ? 7200000ull : 40ull * 86400000));
      if (i % 4 == 0) a -= a % 3600000;
      int64_t expected = 0;
      for (const auto& row : db.buckets("kettle", a, b)) expected += row.energy_mwh;
      ASSERT_EQ(db.energy_sum("kettle", a, b), expected) << a << " " << b;
    }
    int64_t all = 0;
    for (const auto& row : db.buckets("lamp", first, last)) all += row.energy_mwh;
    EXPECT_EQ(db.energy_sum("lamp", INT64_MIN, INT64_MAX), all);
    EXPECT_EQ(db.energy_sum("lamp", last, first), 0);
  };
  check("hours and quarter-hours");
  {
    // Berlin's days rolled up (New York's and Kathmandu's periods do not match them), then samples
    // added late to some of them.
    store::Store db(db_path());
    ASSERT_EQ(energy::roll_up_days(db, energy::Calendar("Europe/Berlin"), 1000), 30U);  // 27 Feb to 28 Mar
    db.commit({}, random_buckets(10, schema2_end, last));
  }
  check("Berlin's days");
}

}  // namespace
}  // namespace pb::cli
