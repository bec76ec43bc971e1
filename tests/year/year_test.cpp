// The simulated year (year_scenario.hpp) against its bounds. Without PB_YEAR_* in the environment: a
// whole year from 2026-01-01 in Europe/Berlin; CTest also runs March and April 2026 (year_scenario_short,
// with the spring DST change) for the sanitizer pass.
#include <gtest/gtest.h>

#include <iostream>

#include "year_scenario.hpp"

TEST(YearScenario, StoredDaysMonthsAndTotalsMatchTheIntegralOfPower) {
  const pb::year::Options options = pb::year::options_from_env({});
  std::cout << "seed " << options.seed << ", " << options.days << " days from " << options.start << " in "
            << options.zone << ", " << options.sockets << " sockets\n";
  const pb::year::Result result = pb::year::run(options);
  std::cout << result.table();
  for (const std::string& f : result.failures) ADD_FAILURE() << f;
  for (const pb::year::SocketFigures& s : result.sockets) {
    EXPECT_EQ(s.days_checked, options.days) << s.cid;
    EXPECT_GT(s.true_kwh, 0.0) << s.cid;
  }
}
