// The simulated year (tests/year/year_scenario.hpp), longer: more sockets, several years, several
// seeds. Prints each run's figures and the worst over all of them; exits 1 if a bound did not hold.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "year_scenario.hpp"

int main(int argc, char** argv) {
  CLI::App app{"pb-bench-year: simulated years of sockets against the integral of their power"};
  pb::year::Options base = pb::year::options_from_env({});
  int seeds = 3, years = 2, days = 0;
  base.sockets = 10;
  app.add_option("--seed", base.seed, "first seed (PB_YEAR_SEED); the runs take seed, seed + 1, ...");
  app.add_option("--seeds", seeds, "runs, one seed each")->check(CLI::PositiveNumber);
  app.add_option("--years", years, "simulated years per run")->check(CLI::PositiveNumber);
  app.add_option("--days", days, "simulated days per run instead of --years (the smoke run)");
  app.add_option("--sockets", base.sockets, "sockets (the five load profiles repeat)")
      ->check(CLI::PositiveNumber);
  app.add_option("--start", base.start, "first local day, YYYY-MM-DD");
  app.add_option("--zone", base.zone, "IANA time zone of the days");
  CLI11_PARSE(app, argc, argv);

  double worst_pct = 0, worst_day_wh = 0, worst_of_tol = 0, seconds = 0;
  size_t failures = 0;
  for (int i = 0; i < seeds; ++i) {
    pb::year::Options o = base;
    o.seed = base.seed + static_cast<uint64_t>(i);
    o.days = days > 0 ? days : 365 * years;
    std::cout << "== seed " << o.seed << ": " << o.days << " days from " << o.start << " in " << o.zone
              << ", " << o.sockets << " sockets\n";
    const pb::year::Result r = pb::year::run(o);
    std::cout << r.table();
    for (const std::string& f : r.failures) std::cout << "FAILED: " << f << "\n";
    failures += r.failures.size();
    seconds += r.seconds;
    for (const auto& s : r.sockets) {
      worst_pct = std::max(worst_pct, std::abs(s.error_pct));
      worst_day_wh = std::max(worst_day_wh, s.worst_day_wh);
      worst_of_tol = std::max(worst_of_tol, s.worst_day_of_tol);
    }
  }
  std::printf(
      "== %d runs x %d days x %d sockets: worst total error %.5f %% (bound 0.1 %%), worst day %.1f Wh "
      "(%.0f %% of its tolerance), %zu failures, %.1f s\n",
      seeds, days > 0 ? days : 365 * years, base.sockets, worst_pct, worst_day_wh, 100 * worst_of_tol,
      failures, seconds);
  return failures == 0 ? 0 : 1;
}
