// TimeTrust with the clocks passed in: when the system clock is believed, and what the gateway's
// time does when it is not.
#include "plugbridge/gateway/time_trust.hpp"

#include <gtest/gtest.h>

namespace pb::gateway {
namespace {

constexpr int64_t kFloor = 1'764'892'800'000;    // 2025-12-05T00:00:00Z, "the build date"
constexpr int64_t kY2000 = 946'684'800'000;      // 2000-01-01T00:00:00Z
constexpr int64_t kToday = 1'780'000'000'000;    // 2026-05-28, after the floor
constexpr int64_t kStored = kToday - 3'600'000;  // the newest stored record: an hour before

TimeTrust::Options options(std::chrono::milliseconds max_wait = std::chrono::minutes(2)) {
  TimeTrust::Options o;
  o.floor_ms = kFloor;
  o.max_wait = max_wait;
  return o;
}

ClockSample at(int64_t wall, int64_t steady, bool synced = false) {
  return ClockSample{wall, steady, synced};
}

TEST(TimeTrust, AClockPastTheFloorAndTheNewestRecordIsBelievedAtOnce) {
  TimeTrust t(options(), kStored, at(kToday, 5'000));
  EXPECT_EQ(t.state(), TimeTrust::State::Trusted);
  EXPECT_TRUE(t.settled());
  EXPECT_TRUE(t.trusted());
  EXPECT_EQ(t.now_ms(6'000), kToday + 1'000);
  EXPECT_TRUE(t.reason().empty());
}

TEST(TimeTrust, AYear2000BootWaitsStampsAfterTheNewestRecordAndRestampsWhenNtpAnswers) {
  TimeTrust t(options(), kStored, at(kY2000, 10'000));
  EXPECT_EQ(t.state(), TimeTrust::State::Waiting);
  EXPECT_FALSE(t.settled());
  EXPECT_FALSE(t.trusted());
  EXPECT_NE(t.reason().find("2000-01-01T00:00:00Z"), std::string::npos) << t.reason();
  // Provisional times go on from the newest stored one, never from 2000.
  const int64_t provisional = t.now_ms(15'000);
  EXPECT_GT(provisional, kStored);
  EXPECT_LT(provisional, kStored + 10'000);

  auto c = t.observe(at(kY2000 + 30'000, 40'000));
  EXPECT_FALSE(c.state_changed);
  EXPECT_EQ(t.state(), TimeTrust::State::Waiting);

  // NTP: the wall clock is today now. A record stamped at steady 15 000 was really at today - 35 s.
  c = t.observe(at(kToday, 50'000, true));
  EXPECT_TRUE(c.state_changed);
  EXPECT_EQ(c.to, TimeTrust::State::Trusted);
  EXPECT_EQ(provisional + c.restamp_ms, kToday - 35'000);
  EXPECT_EQ(t.now_ms(51'000), kToday + 1'000);
  EXPECT_FALSE(c.message.empty());
}

TEST(TimeTrust, AnUnsynchronisedClockBeforeTheNewestRecordIsNotBelieved) {
  TimeTrust t(options(), kToday, at(kStored, 0));
  EXPECT_EQ(t.state(), TimeTrust::State::Waiting);
  EXPECT_NE(t.reason().find("newest time already recorded"), std::string::npos) << t.reason();
  // The same time with NTP's word for it is believed: NTP steps clocks back when they ran ahead.
  const auto c = t.observe(at(kStored + 1'000, 1'000, true));
  EXPECT_EQ(c.to, TimeTrust::State::Trusted);
}

TEST(TimeTrust, AStepBackWithoutNtpIsFollowedOnTheMonotonicClock) {
  TimeTrust t(options(), kStored, at(kToday, 0));
  ASSERT_EQ(t.state(), TimeTrust::State::Trusted);
  t.observe(at(kToday + 10'000, 10'000));
  // Someone sets the clock back an hour.
  auto c = t.observe(at(kToday + 11'000 - 3'600'000, 11'000));
  EXPECT_EQ(c.to, TimeTrust::State::Following);
  EXPECT_TRUE(t.trusted()) << "the monotonic clock since a trusted point is still right";
  EXPECT_TRUE(t.settled());
  EXPECT_EQ(t.now_ms(12'000), kToday + 12'000) << "time goes on, forward";
  // The wall clock catches up with the time kept: believed again, no step.
  c = t.observe(at(kToday + 20'000, 20'000));
  EXPECT_EQ(c.to, TimeTrust::State::Trusted);
  EXPECT_EQ(c.step_ms, 0);
}

TEST(TimeTrust, AStepBackWithNtpIsTakenAndReported) {
  TimeTrust t(options(), kStored, at(kToday, 0));
  const auto c = t.observe(at(kToday + 1'000 - 3'600'000, 1'000, true));
  EXPECT_EQ(c.to, TimeTrust::State::Trusted);
  EXPECT_EQ(c.step_ms, -3'600'000);
  EXPECT_EQ(c.restamp_ms, 0) << "nothing is held once settled";
  EXPECT_NE(c.message.find("stepped"), std::string::npos) << c.message;
  EXPECT_EQ(t.now_ms(2'000), kToday + 2'000 - 3'600'000);
}

TEST(TimeTrust, SmallDifferencesAreNotSteps) {
  TimeTrust t(options(), kStored, at(kToday, 0));
  const auto c = t.observe(at(kToday + 1'500, 1'000));
  EXPECT_FALSE(c.state_changed);
  EXPECT_EQ(c.step_ms, 0);
  EXPECT_TRUE(c.message.empty());
  // Half a second back without NTP is jitter, not a clock to distrust.
  EXPECT_FALSE(t.observe(at(kToday + 1'600, 2'000)).state_changed);
  EXPECT_EQ(t.state(), TimeTrust::State::Trusted);
}

TEST(TimeTrust, WithoutATrustworthyClockWithinMaxWaitTheTimeIsEstimated) {
  TimeTrust t(options(std::chrono::seconds(60)), kStored, at(kY2000, 0));
  EXPECT_FALSE(t.observe(at(kY2000 + 59'000, 59'000)).state_changed);
  const auto c = t.observe(at(kY2000 + 60'000, 60'000));
  EXPECT_EQ(c.to, TimeTrust::State::Estimated);
  EXPECT_EQ(c.restamp_ms, 0);
  EXPECT_TRUE(t.settled()) << "records are stored";
  EXPECT_FALSE(t.trusted()) << "but neither reported nor used for pruning";
  EXPECT_GT(t.now_ms(60'000), kStored);
  // NTP later: trusted, a step from the estimate.
  const auto d = t.observe(at(kToday, 70'000, true));
  EXPECT_EQ(d.to, TimeTrust::State::Trusted);
  EXPECT_EQ(d.restamp_ms, 0) << "what was stored with the estimate stays";
  EXPECT_TRUE(t.trusted());
}

TEST(TimeTrust, AClockALittleBehindTheNewestRecordIsTheEstimateWithoutNtp) {
  // fake-hwclock after a power cut (or one record stamped in the future once): past the build date,
  // behind the newest record, no NTP.
  TimeTrust t(options(std::chrono::seconds(60)), kToday, at(kStored, 0));
  ASSERT_EQ(t.state(), TimeTrust::State::Waiting);
  const int64_t provisional = t.now_ms(30'000);
  EXPECT_GT(provisional, kToday);
  const auto c = t.observe(at(kStored + 60'000, 60'000));
  EXPECT_EQ(c.to, TimeTrust::State::Estimated);
  EXPECT_EQ(t.now_ms(60'000), kStored + 60'000) << "the system clock, not the newest record";
  EXPECT_EQ(provisional + c.restamp_ms, kStored + 30'000) << "held records follow";
}

TEST(TimeTrust, GivingUpWaitingSettlesOnTheEstimate) {
  TimeTrust t(options(), kStored, at(kY2000, 0));
  const auto c = t.give_up_waiting(at(kY2000 + 1'000, 1'000), "100000 records held");
  EXPECT_EQ(c.to, TimeTrust::State::Estimated);
  EXPECT_NE(c.message.find("100000 records held"), std::string::npos);
  EXPECT_FALSE(t.give_up_waiting(at(kY2000 + 2'000, 2'000), "again").state_changed);
}

TEST(TimeTrust, BeforeTheBuildDateEvenNtpIsNotBelieved) {
  TimeTrust t(options(), 0, at(kFloor - 86'400'000, 0, true));
  EXPECT_EQ(t.state(), TimeTrust::State::Waiting);
  EXPECT_GE(t.now_ms(0), kFloor);
  EXPECT_GT(build_floor_ms(), kFloor) << "built after the floor used here";
}

}  // namespace
}  // namespace pb::gateway
