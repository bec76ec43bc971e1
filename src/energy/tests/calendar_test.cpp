// Local days and months in real IANA zones (system zoneinfo), and day/month totals from buckets.
#include "plugbridge/energy/calendar.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "plugbridge/energy/accountant.hpp"
#include "plugbridge/energy/totals.hpp"

namespace pb::energy {
namespace {

using namespace date::literals;  // NOLINT(google-build-using-namespace)

constexpr int64_t kHourMs = 3600 * 1000;

TEST(Calendar, BerlinDstDaysAre23And25Hours) {
  const Calendar cal("Europe/Berlin");
  EXPECT_EQ(cal.zone_name(), "Europe/Berlin");
  const Range spring = cal.day(2026_y / date::March / 29);
  EXPECT_EQ(spring.from_ms, 1'774'738'800'000);  // 2026-03-28 23:00 UTC
  EXPECT_EQ(spring.to_ms - spring.from_ms, 23 * kHourMs);
  const Range autumn = cal.day(2026_y / date::October / 25);
  EXPECT_EQ(autumn.from_ms, 1'792'879'200'000);  // 2026-10-24 22:00 UTC
  EXPECT_EQ(autumn.to_ms - autumn.from_ms, 25 * kHourMs);
  const Range normal = cal.day(2026_y / date::November / 23);
  EXPECT_EQ(normal.to_ms - normal.from_ms, 24 * kHourMs);
  // Months containing the switch: 31 days minus / plus one hour.
  const Range march = cal.month(2026_y / date::March);
  EXPECT_EQ(march.to_ms - march.from_ms, (31 * 24 - 1) * kHourMs);
  const Range october = cal.month(2026_y / date::October);
  EXPECT_EQ(october.to_ms - october.from_ms, (31 * 24 + 1) * kHourMs);
}

TEST(Calendar, NewYorkDstDays) {
  const Calendar cal("America/New_York");
  const Range spring = cal.day(2026_y / date::March / 8);
  EXPECT_EQ(spring.from_ms, 1'772'946'000'000);  // 05:00 UTC
  EXPECT_EQ(spring.to_ms - spring.from_ms, 23 * kHourMs);
  const Range autumn = cal.day(2026_y / date::November / 1);
  EXPECT_EQ(autumn.from_ms, 1'793'505'600'000);  // 04:00 UTC
  EXPECT_EQ(autumn.to_ms - autumn.from_ms, 25 * kHourMs);
  // The local date of instants just before / after local midnight.
  EXPECT_EQ(cal.local_date(autumn.from_ms - 1), 2026_y / date::October / 31);
  EXPECT_EQ(cal.local_date(autumn.from_ms), 2026_y / date::November / 1);
  // 01:30 happens twice that day; both are still November 1st.
  EXPECT_EQ(cal.local_date(autumn.from_ms + 90 * 60 * 1000), 2026_y / date::November / 1);
  EXPECT_EQ(cal.local_date(autumn.from_ms + 150 * 60 * 1000), 2026_y / date::November / 1);
}

TEST(Calendar, QuarterHourOffsetsStartOnBucketBoundaries) {
  const Calendar kathmandu("Asia/Kathmandu");  // +5:45
  const Range d = kathmandu.day(2026_y / date::November / 23);
  EXPECT_EQ(d.from_ms, 1'795'371'300'000);  // 2026-11-22 18:15 UTC
  EXPECT_EQ(d.from_ms % kBucketMs, 0);
  EXPECT_EQ(d.to_ms - d.from_ms, 24 * kHourMs);
  EXPECT_EQ(kathmandu.local_time_string(d.from_ms), "2026-11-23 00:00:00");

  const Calendar chatham("Pacific/Chatham");  // +12:45 / +13:45
  const Range dst_end = chatham.day(2026_y / date::April / 5);
  EXPECT_EQ(dst_end.from_ms, 1'775'297'700'000);
  EXPECT_EQ(dst_end.to_ms - dst_end.from_ms, 25 * kHourMs);
  const Range dst_start = chatham.day(2026_y / date::September / 27);
  EXPECT_EQ(dst_start.from_ms, 1'790'421'300'000);
  EXPECT_EQ(dst_start.to_ms - dst_start.from_ms, 23 * kHourMs);
  EXPECT_EQ(dst_start.from_ms % kBucketMs, 0);
  EXPECT_EQ(dst_start.to_ms % kBucketMs, 0);
}

TEST(Calendar, MonthEndsAndYearEnd) {
  const Calendar utc("UTC");
  EXPECT_EQ(utc.month(2028_y / date::February).to_ms - utc.month(2028_y / date::February).from_ms,
            29 * 24 * kHourMs);
  EXPECT_EQ(utc.month(2026_y / date::February).to_ms - utc.month(2026_y / date::February).from_ms,
            28 * 24 * kHourMs);
  const Calendar chatham("Pacific/Chatham");
  const Range dec = chatham.month(2026_y / date::December);
  EXPECT_EQ(dec.to_ms, chatham.day(2027_y / date::January / 1).from_ms);
  EXPECT_EQ(chatham.local_date(dec.to_ms - 1), 2026_y / date::December / 31);
  EXPECT_EQ(chatham.local_time_string(dec.to_ms), "2027-01-01 00:00:00");
}

TEST(Calendar, SystemZoneAndUnknownZone) {
  EXPECT_FALSE(Calendar().zone_name().empty());
  EXPECT_THROW(Calendar("Mars/Olympus_Mons"), std::runtime_error);
}

class TotalsTest : public ::testing::Test {
 protected:
  TotalsTest()
      : path_((std::filesystem::temp_directory_path() /
               ("pb_totals_test_" + std::to_string(::getpid()) + ".db"))
                  .string()) {
    std::filesystem::remove(path_);
    store_ = std::make_unique<store::Store>(path_, store::StoreOptions{.synchronous = "OFF"});
  }
  ~TotalsTest() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  // 1 Wh in the bucket of each given instant.
  void put(const std::vector<int64_t>& instants, const std::string& cid = "s1") {
    store::EnergyUpdate u;
    for (int64_t t : instants)
      u.samples.push_back({.cid = cid, .start_ms = bucket_start(t), .energy_mwh = 1000});
    store_->commit({}, u);
  }
  std::string path_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(TotalsTest, DayAndMonthTotalsFollowLocalMidnight) {
  const Calendar cal("Asia/Kathmandu");
  const Range d = cal.day(2026_y / date::November / 23);
  // Last bucket of the 22nd, first and last of the 23rd, first of the 24th.
  put({d.from_ms - 1, d.from_ms, d.to_ms - 1, d.to_ms});
  EXPECT_EQ(day_total(*store_, cal, "s1", 2026_y / date::November / 22), 1000);
  EXPECT_EQ(day_total(*store_, cal, "s1", 2026_y / date::November / 23), 2000);
  EXPECT_EQ(day_total(*store_, cal, "s1", 2026_y / date::November / 24), 1000);
  EXPECT_EQ(month_total(*store_, cal, "s1", 2026_y / date::November), 4000);
  EXPECT_EQ(all_time_total(*store_, "s1"), 4000);

  const Summary s = summary(*store_, cal, "s1", d.from_ms + 5 * kHourMs);
  EXPECT_EQ(s, (Summary{.today_mwh = 2000,
                        .yesterday_mwh = 1000,
                        .this_month_mwh = 4000,
                        .last_month_mwh = 0,
                        .all_time_mwh = 4000}));
}

TEST_F(TotalsTest, BerlinShortDayHoldsExactly23HoursOfBuckets) {
  const Calendar cal("Europe/Berlin");
  const Range d = cal.day(2026_y / date::March / 29);
  std::vector<int64_t> every_bucket;
  for (int64_t t = d.from_ms - kHourMs; t < d.to_ms + kHourMs; t += kBucketMs) every_bucket.push_back(t);
  put(every_bucket);
  EXPECT_EQ(day_total(*store_, cal, "s1", 2026_y / date::March / 29), 23 * 4 * 1000);
  EXPECT_EQ(day_total(*store_, cal, "s1", 2026_y / date::March / 28), 4 * 1000);  // its last hour
  EXPECT_EQ(month_total(*store_, cal, "s1", 2026_y / date::March), (23 + 1 + 1) * 4 * 1000);
  EXPECT_EQ(month_total(*store_, cal, "s1", 2026_y / date::April), 0);
}

TEST_F(TotalsTest, DaysAreRolledUpInTheZoneSkippingThoseWithoutBuckets) {
  const Calendar cal("Asia/Kathmandu");  // midnight at :15 UTC
  const Range d20 = cal.day(2026_y / date::November / 20), d22 = cal.day(2026_y / date::November / 22),
              d23 = cal.day(2026_y / date::November / 23);
  const Calendar berlin("Europe/Berlin");
  const Range b24 = berlin.day(2026_y / date::November / 24);
  // Nothing on the 21st; the 23rd's first bucket lies in Berlin's 22nd.
  put({d20.from_ms, d20.to_ms - 1, d22.from_ms + kHourMs, d23.from_ms + 1, b24.from_ms + 12 * kHourMs});
  auto totals = [&] {
    std::vector<int64_t> out;
    for (unsigned d = 19; d <= 25; ++d) {
      out.push_back(day_total(*store_, cal, "s1", 2026_y / date::November / d));
      out.push_back(day_total(*store_, berlin, "s1", 2026_y / date::November / d));
    }
    out.push_back(month_total(*store_, cal, "s1", 2026_y / date::November));
    return out;
  };
  const std::vector<int64_t> before = totals();
  EXPECT_EQ(before[2], 2000);  // Kathmandu's 20th

  EXPECT_EQ(roll_up_days(*store_, cal, 10), 0U) << "nothing is rolled up into the buckets yet";
  store_->roll_up(d23.from_ms + 3 * kHourMs - (d23.from_ms % kHourMs));  // in the 23rd
  EXPECT_EQ(roll_up_days(*store_, cal, 1), 1U);
  EXPECT_EQ(store_->rolled_days(INT64_MIN, INT64_MAX),
            (std::vector<store::DaySpan>{{d20.from_ms, d20.to_ms}}));
  EXPECT_EQ(roll_up_days(*store_, cal, 10), 1U) << "the 21st has no bucket, the 23rd is not over";
  EXPECT_EQ(store_->rolled_days(INT64_MIN, INT64_MAX),
            (std::vector<store::DaySpan>{{d20.from_ms, d20.to_ms}, {d22.from_ms, d22.to_ms}}));
  EXPECT_EQ(roll_up_days(*store_, cal, 10), 0U);
  EXPECT_EQ(totals(), before);

  // In another zone the days go on after the last one listed: Berlin's 22nd begins before it ends.
  store_->roll_up(b24.to_ms + 2 * kHourMs);
  EXPECT_EQ(roll_up_days(*store_, berlin, 10), 1U);
  EXPECT_EQ(store_->rolled_days(d22.to_ms, INT64_MAX),
            (std::vector<store::DaySpan>{{b24.from_ms, b24.to_ms}}));
  EXPECT_EQ(totals(), before);
}

TEST_F(TotalsTest, LiveTotalsFollowCommitsAndTheDayChange) {
  const Calendar cal("America/New_York");
  const Range d = cal.day(2026_y / date::November / 1);
  put({d.from_ms + kHourMs});
  LiveTotals live(cal);
  const int64_t now = d.from_ms + 2 * kHourMs;
  EXPECT_EQ(live.get(*store_, "s1", now).day_mwh, 1000);
  store::EnergyUpdate u;
  u.samples.push_back({.cid = "s1", .start_ms = bucket_start(now), .energy_mwh = 500});
  store_->commit({}, u);
  live.add(u);
  EXPECT_EQ(live.get(*store_, "s1", now).day_mwh, 1500);
  EXPECT_EQ(live.get(*store_, "s1", now).month_mwh, 1500);
  // Next local day: re-read, today's total starts from what is stored for it (nothing).
  const auto& next = live.get(*store_, "s1", d.to_ms + 1);
  EXPECT_EQ(next.day_mwh, 0);
  EXPECT_EQ(next.month_mwh, 1500);
}

TEST_F(TotalsTest, LiveTotalsReadEverySocketAtTheFirstCallOfALocalDay) {
  const Calendar cal("Europe/Berlin");
  const Range d = cal.day(2026_y / date::November / 10);
  // Yesterday, this morning (rolled up) and this afternoon (samples not rolled up yet).
  for (const char* cid : {"s1", "s2", "s3"})
    put({d.from_ms - kHourMs, d.from_ms + kHourMs, d.from_ms + 13 * kHourMs}, cid);
  store_->roll_up(d.from_ms + 12 * kHourMs);
  LiveTotals live(cal);
  const int64_t now = d.from_ms + 14 * kHourMs;
  EXPECT_EQ(live.get(*store_, "s1", now).day_mwh, 2000);
  EXPECT_EQ(live.get(*store_, "s1", now).month_mwh, 3000);
  EXPECT_EQ(live.loads(), 1U);
  // Written behind its back (not through add): the other sockets' totals are those read with s1's.
  put({now}, "s2");
  EXPECT_EQ(live.get(*store_, "s2", now).day_mwh, 2000);
  EXPECT_EQ(live.get(*store_, "s3", now).month_mwh, 3000);
  // A socket without history at the load counts what is committed after it.
  EXPECT_EQ(live.get(*store_, "s4", now).day_mwh, 0);
  store::EnergyUpdate u;
  u.samples.push_back({.cid = "s4", .start_ms = bucket_start(now), .energy_mwh = 700});
  store_->commit({}, u);
  live.add(u);
  EXPECT_EQ(live.get(*store_, "s4", now).day_mwh, 700);
  EXPECT_EQ(live.loads(), 1U);
  // The next local day reads them all again, once.
  EXPECT_EQ(live.get(*store_, "s2", d.to_ms).day_mwh, 0);
  EXPECT_EQ(live.get(*store_, "s2", d.to_ms).month_mwh, 4000);
  EXPECT_EQ(live.get(*store_, "s4", d.to_ms).month_mwh, 700);
  EXPECT_EQ(live.get(*store_, "s1", d.to_ms).month_mwh, 3000);
  EXPECT_EQ(live.loads(), 2U);
}

}  // namespace
}  // namespace pb::energy
