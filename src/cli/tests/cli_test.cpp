// The CLI on a prepared database: help, errors, energy, history, events, export.
#include "cli_fixture.hpp"

namespace pb::cli {
namespace {

using namespace test;
namespace fs = std::filesystem;
using json = nlohmann::json;

TEST_F(CliTest, HelpListsSubcommandsAndExitCodes) {
  auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* s : {"devices", "energy", "history", "events", "relay", "countdown", "export",
                        "Exit codes:", "4  daemon not reachable"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  auto h = run({"history", "--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--chart"), std::string::npos);
  EXPECT_NE(h.out.find("Exit codes:"), std::string::npos);
  EXPECT_NE(h.out.find("Dates: YYYY-MM-DD"), std::string::npos) << h.out;
  EXPECT_EQ(run({"bogus"}).code, exit_code::kUsage);
  EXPECT_EQ(run({"history", "kettle", "--by", "year"}).code, exit_code::kUsage);
}

TEST_F(CliTest, EverySubcommandHasHelpWithTheExitCodes) {
  for (const char* sub :
       {"devices", "energy", "history", "events", "relay", "countdown", "export", "provision"}) {
    SCOPED_TRACE(sub);
    auto h = run({sub, "--help"});
    EXPECT_EQ(h.code, 0) << h.err;
    EXPECT_NE(h.out.find(std::string("plugbridge ") + sub), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("Exit codes:"), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("4  daemon not reachable"), std::string::npos) << h.out;
  }
  // The defaults follow the installed layout (systemd/plugbridged.service, docs).
  auto g = run({"--help"});
  EXPECT_NE(g.out.find("/etc/plugbridge/plugbridge.yaml"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("/run/plugbridge/control.sock"), std::string::npos) << g.out;
  EXPECT_EQ(GlobalOptions{}.config_path, "/etc/plugbridge/plugbridge.yaml");
  EXPECT_EQ(config::Config{}.database, "/var/lib/plugbridge/plugbridge.db");
  EXPECT_EQ(config::Config{}.control_socket, "/run/plugbridge/control.sock");
}

TEST_F(CliTest, NoDatabaseYetNamesTheFix) {
  auto r = run({"energy"});
  EXPECT_EQ(r.code, exit_code::kNoData);
  EXPECT_EQ(r.err, "plugbridge energy: no database at " + db_path() +
                       " yet\n  fix: start plugbridged once (it creates the database), or pass --db FILE\n");
}

// A database written by a newer release (a schema this build does not know) is refused, naming
// both versions and the fix; so is one an older daemon left behind (the CLI never migrates).
TEST_F(CliTest, ADatabaseOfAnotherSchemaVersionIsRefused) {
  std::vector<store::Migration> newer = store::embedded_migrations();
  const int latest = static_cast<int>(newer.size());
  newer.push_back({latest + 1, "9999_future.sql", "CREATE TABLE future (x INTEGER);"});
  { store::Store db(db_path(), store::StoreOptions{.migrations = &newer}); }
  for (const char* cmd : {"energy", "history", "export"}) {
    SCOPED_TRACE(cmd);
    auto r = run(std::string(cmd) == "history"  ? std::vector<std::string>{"history", "kettle"}
                 : std::string(cmd) == "export" ? std::vector<std::string>{"export", "--csv", "-"}
                                                : std::vector<std::string>{"energy"});
    EXPECT_EQ(r.code, exit_code::kNoData);
    EXPECT_NE(r.err.find("cannot open the database: database " + db_path() + " has schema version " +
                         std::to_string(latest + 1) + ", newer than version " + std::to_string(latest)),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("fix: check that you may read it"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }

  fs::remove(db_path());
  const std::vector<store::Migration> older(store::embedded_migrations().begin(),
                                            store::embedded_migrations().end() - 1);
  { store::Store db(db_path(), store::StoreOptions{.migrations = &older}); }
  auto r = run({"energy"});
  EXPECT_EQ(r.code, exit_code::kNoData);
  EXPECT_NE(r.err.find("a read-only open cannot migrate it"), std::string::npos) << r.err;
  store::Store check(db_path(), store::StoreOptions{.read_only = true, .migrations = &older});
  EXPECT_EQ(check.schema_version(), latest - 1);  // left as it was
}

TEST_F(CliTest, MissingConfigNamesTheFix) {
  std::ostringstream out, err;
  Terminal t{out, err};
  int code = pb::cli::run({"--config", (dir_ / "nope.yaml").string(), "energy"}, t);
  EXPECT_EQ(code, exit_code::kNoData);
  EXPECT_NE(err.str().find("cannot open config file"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("fix: pass --config FILE"), std::string::npos) << err.str();
}

TEST_F(CliTest, EnergyTable) {
  fill();
  auto r = run({"energy"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "CID     NAME          TODAY  YESTERDAY  THIS MONTH  LAST MONTH   ALL TIME\n"
            "kettle  Kettle     125.0 Wh   250.0 Wh    375.0 Wh   1.000 kWh  1.375 kWh\n"
            "lamp    Desk lamp   10.0 Wh     0.0 Wh     10.0 Wh      0.0 Wh    10.0 Wh\n"
            "TOTAL              135.0 Wh   250.0 Wh    385.0 Wh   1.000 kWh  1.385 kWh\n"
            "\n"
            "(days and months in Europe/Berlin)\n");
}

TEST_F(CliTest, EnergyCsvAndJson) {
  fill();
  auto c = run({"energy", "--format", "csv"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out,
            "cid,name,today_kwh,yesterday_kwh,this_month_kwh,last_month_kwh,all_time_kwh\n"
            "kettle,Kettle,0.125000,0.250000,0.375000,1.000000,1.375000\n"
            "lamp,Desk lamp,0.010000,0.000000,0.010000,0.000000,0.010000\n"
            "TOTAL,,0.135000,0.250000,0.385000,1.000000,1.385000\n");
  auto j = run({"energy", "kettle", "--format", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(json::parse(j.out), json::parse(R"({
    "zone": "Europe/Berlin", "at": "2026-11-23T12:00:00+01:00",
    "sockets": [{"cid": "kettle", "name": "Kettle", "today_mwh": 125000, "yesterday_mwh": 250000,
                 "this_month_mwh": 375000, "last_month_mwh": 1000000, "all_time_mwh": 1375000}]})"));
}

TEST_F(CliTest, HistoryByDayTable) {
  fill();
  auto r = run({"history", "kettle", "--from", "2026-11-21", "--to", "2026-11-24"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "PERIOD            ENERGY  MEAN W  MIN W   MAX W  MIN V  MAX V  MAX A  SAMPLES\n"
            "2026-11-21 Sat    0.0 Wh       -      -       -      -      -      -        0\n"
            "2026-11-22 Sun  250.0 Wh  1000.0  900.0  1100.0  229.0  231.5  4.348       90\n"
            "2026-11-23 Mon  125.0 Wh  1000.0  900.0  1100.0  229.0  231.5  4.348       45\n"
            "TOTAL           375.0 Wh\n"
            "\n"
            "(kettle, by day, Europe/Berlin)\n");
}

TEST_F(CliTest, HistoryCsvAndJson) {
  fill();
  auto c = run({"history", "kettle", "--from", "2026-11-22", "--to", "2026-11-24", "--format", "csv"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out,
            "start,end,energy_kwh,mean_w,min_w,max_w,min_v,max_v,max_a,samples\n"
            "2026-11-22T00:00:00+01:00,2026-11-23T00:00:00+01:00,0.250000,1000.0,900.0,1100.0,229.0,231.5,4."
            "348,90\n"
            "2026-11-23T00:00:00+01:00,2026-11-24T00:00:00+01:00,0.125000,1000.0,900.0,1100.0,229.0,231.5,4."
            "348,45\n");
  auto j = run({"history", "--all", "--by", "month", "--from", "2026-10-01", "--to", "2026-12-01", "--format",
                "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(json::parse(j.out), json::parse(R"({
    "cid": null, "by": "month", "zone": "Europe/Berlin",
    "from": "2026-10-01T00:00:00+02:00", "to": "2026-12-01T00:00:00+01:00", "total_energy_mwh": 1385000,
    "periods": [
      {"start": "2026-10-01T00:00:00+02:00", "end": "2026-11-01T00:00:00+01:00",
       "start_ms": 1790805600000, "end_ms": 1793487600000, "energy_mwh": 1000000, "sockets": 1},
      {"start": "2026-11-01T00:00:00+01:00", "end": "2026-12-01T00:00:00+01:00",
       "start_ms": 1793487600000, "end_ms": 1796079600000, "energy_mwh": 385000, "sockets": 2}]})"));
}

TEST_F(CliTest, HistoryByHourOverTheAutumnDstChangeHas25Hours) {
  {
    store::Store db(db_path());
    store::EnergyUpdate up;
    // 02:00-03:00 happens twice on 2026-10-25 in Berlin: once at +02:00, once at +01:00.
    up.samples = {bucket("kettle", "2026-10-25 01:45", 1000), store::BucketUpdate{}};
    up.samples[1] = up.samples[0];
    up.samples[1].start_ms = berlin("2026-10-25 02:00") + 3600000;  // the second 02:00
    up.samples[1].energy_mwh = 2000;
    db.commit({}, up);
  }
  auto h = run(
      {"history", "kettle", "--by", "hour", "--from", "2026-10-25", "--to", "2026-10-26", "--format", "csv"});
  ASSERT_EQ(h.code, 0) << h.err;
  std::vector<std::string> lines;
  std::istringstream in(h.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 26u) << h.out;  // header + 25 hours
  EXPECT_EQ(lines[2].substr(0, 60), "2026-10-25T01:00:00+02:00,2026-10-25T02:00:00+02:00,0.001000");
  EXPECT_EQ(lines[3].substr(0, 51), "2026-10-25T02:00:00+02:00,2026-10-25T02:00:00+01:00");
  EXPECT_EQ(lines[4].substr(0, 60), "2026-10-25T02:00:00+01:00,2026-10-25T03:00:00+01:00,0.002000");
  auto d = run({"history", "--all", "--from", "2026-10-25", "--to", "2026-10-26", "--format", "csv"});
  // Average power over the 25-hour day: 3 Wh / 25 h = 0.12 W.
  EXPECT_EQ(d.out,
            "start,end,energy_kwh,avg_w,sockets\n"
            "2026-10-25T00:00:00+02:00,2026-10-26T00:00:00+01:00,0.003000,0.1,1\n");
}

TEST_F(CliTest, HistoryChartFitsTheWidthWithAxisAndUnits) {
  fill();
  auto r = run({"history", "kettle", "--from", "2026-11-21", "--to", "2026-11-24", "--chart"});
  ASSERT_EQ(r.code, 0) << r.err;
  // Not a TTY: 80 columns, no colour.
  EXPECT_EQ(r.out,
            "kettle: energy per day in Wh (Europe/Berlin)\n"
            "2026-11-21 Sat │                                                              0\n"
            "2026-11-22 Sun │█████████████████████████████▌                              250\n"
            "2026-11-23 Mon │██████████████▊                                             125\n"
            "               └────────────────────────────┬─────────────────────────────┬\n"
            "                0                         250                           500 Wh\n");
  auto tty = run({"history", "kettle", "--from", "2026-11-22", "--to", "2026-11-23", "--chart"}, true);
  EXPECT_NE(tty.out.find("\x1b[32m"), std::string::npos);
  std::istringstream in(tty.out);
  for (std::string l; std::getline(in, l);) EXPECT_LE(display_width(l), 60u + 9u) << l;  // + colour codes
  auto plain =
      run({"history", "kettle", "--from", "2026-11-22", "--to", "2026-11-23", "--chart"}, true, true);
  EXPECT_EQ(plain.out.find("\x1b["), std::string::npos) << "NO_COLOR honoured";
  std::istringstream in2(plain.out);
  for (std::string l; std::getline(in2, l);) EXPECT_LE(display_width(l), 60u) << l;
}

TEST_F(CliTest, HistoryChartFitsEveryTerminalWidth) {
  fill();
  for (const char* by : {"15m", "day", "month"}) {
    for (width_ = 20; width_ <= 140; ++width_) {
      SCOPED_TRACE(std::string(by) + " at " + std::to_string(width_) + " columns");
      const bool quarters = std::string(by) == "15m";
      auto r =
          run({"history", "kettle", "--by", by, "--from", quarters ? "2026-11-23 07:00" : "2026-10-31 20:00",
               "--to", "2026-11-23 09:00", "--chart"},
              true);
      ASSERT_EQ(r.code, 0) << r.err;
      std::istringstream in(r.out);
      size_t lines = 0;
      for (std::string l; std::getline(in, l); ++lines) {
        for (const char* code : {"\x1b[32m", "\x1b[0m"})
          for (size_t p = l.find(code); p != std::string::npos; p = l.find(code))
            l.erase(p, std::strlen(code));
        ASSERT_LT(display_width(l), static_cast<size_t>(width_)) << l << "\n" << r.out;
      }
      EXPECT_GE(lines, 4u) << r.out;
      EXPECT_NE(r.out.find("└"), std::string::npos) << r.out;
      if (width_ >= 40) {
        EXPECT_NE(r.out.find(quarters ? " Wh\n" : " kWh\n"), std::string::npos) << r.out;
      }
    }
  }
}

TEST_F(CliTest, HistoryErrors) {
  fill();
  auto u = run({"history", "kitchen"});
  EXPECT_EQ(u.code, exit_code::kUsage);
  EXPECT_EQ(u.err,
            "plugbridge history: unknown cid 'kitchen'\n  fix: use one of: kettle, lamp (see `plugbridge "
            "devices`)\n");
  auto d = run({"history", "kettle", "--from", "2026-13-01"});
  EXPECT_EQ(d.code, exit_code::kUsage);
  EXPECT_NE(d.err.find("bad date for --from: '2026-13-01'"), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("fix: use YYYY-MM-DD"), std::string::npos) << d.err;
  EXPECT_EQ(run({"history"}).code, exit_code::kUsage);
  EXPECT_EQ(run({"history", "kettle", "--from", "today", "--to", "yesterday"}).code, exit_code::kUsage);
  EXPECT_EQ(run({"history", "kettle", "--chart", "--format", "csv"}).code, exit_code::kUsage);
}

// The daemon may commit while the CLI reads; one commit adds to both sockets here, right after the
// first socket's rows were read. energy and history read one snapshot, so the commit is in all
// rows or in none, never in lamp's rows only.
TEST_F(CliTest, ACommitWhileReadingIsInAllRowsOrInNone) {
  fill();
  const std::vector<std::vector<std::string>> commands = {
      {"energy"},
      {"energy", "--format", "json"},
      {"history", "--all", "--from", "2026-11-22", "--to", "2026-11-24"},
      {"history", "--all", "--by", "hour", "--from", "2026-11-23 07:00", "--to", "2026-11-23 11:00"}};
  int64_t kettle_total = 1375000;
  for (const auto& cmd : commands) {
    SCOPED_TRACE(cmd.back());
    const Result before = run(cmd);
    ASSERT_EQ(before.code, 0) << before.err;
    int commits = 0;
    after_socket_read_ = [&](const std::string&) {
      if (commits++ > 0) return;
      store::Store db(db_path());
      store::EnergyUpdate up;
      up.samples = {bucket("kettle", "2026-11-23 09:00", 500000), bucket("lamp", "2026-11-23 09:00", 500000)};
      kettle_total += 500000;
      store::EnergyStateRow st;
      st.cid = "kettle";
      st.total_mwh = kettle_total;
      up.states.push_back(st);
      db.commit({}, up);
    };
    const Result during = run(cmd);
    after_socket_read_ = nullptr;
    ASSERT_EQ(commits, 2);  // kettle, then lamp
    EXPECT_EQ(during.out, before.out);
    EXPECT_NE(run(cmd).out, before.out);  // the commit did happen
  }
}

TEST_F(CliTest, Events) {
  fill();
  auto r = run({"events", "--from", "2026-11-23"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "TIME                 CID     KIND          WHAT\n"
      "2026-11-23 08:00:00  kettle  relay         switched on (button)\n"
      "2026-11-23 08:30:00  kettle  over_current  over-current protection tripped at 5.230 A\n"
      "2026-11-23 09:00:00  lamp    command       local command failed (code 2001): socket is offline\n");
  auto k = run({"events", "kettle", "--from", "2026-11-23", "--format", "csv", "--limit", "1"});
  EXPECT_EQ(k.out,
            "time,cid,kind,what\n"
            "2026-11-23T08:30:00+01:00,kettle,over_current,over-current protection tripped at 5.230 A\n");
}

TEST_F(CliTest, ExportSamplesAndBuckets) {
  fill();
  std::string file = (dir_ / "out.csv").string();
  auto r = run({"export", "--csv", file, "--from", "2026-11-23"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "wrote 2 samples to " + file + "\n");
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text,
            "cid,start,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n"
            "lamp,2026-11-23T00:00:00+01:00,1795388400000,0.010000,90,40.000,36.000,44.000,229.000,231.500,"
            "0.173913\n"
            "kettle,2026-11-23T08:00:00+01:00,1795417200000,0.125000,45,1000.000,900.000,1100.000,229.000,"
            "231.500,4.347826\n");
  auto b = run({"export", "--csv", "-", "--buckets", "--cid", "lamp"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(
      b.out,
      "cid,start,end,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n"
      "lamp,2026-11-23T00:00:00+01:00,2026-11-23T00:15:00+01:00,1795388400000,0.010000,90,40.000,36.000,"
      "44.000,229.000,231.500,0.173913\n");
  // Rolled-up buckets first, then those of the samples not rolled up yet; a sample without readings
  // (energy only) has no power, voltage or current; the same socket in one interval twice adds up.
  {
    store::Store db(db_path());
    db.commit({}, store::EnergyUpdate{
                      {bucket("kettle", "2026-11-23 10:01", 500), bucket("kettle", "2026-11-23 10:01", 250),
                       bucket("lamp", "2026-11-23 10:02", 1000, 1, 42000)},
                      {}});
  }
  auto k = run({"export", "--csv", "-", "--cid", "kettle"});
  ASSERT_EQ(k.code, 0) << k.err;
  EXPECT_EQ(k.out,
            "cid,start,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n"
            "kettle,2026-10-31T20:00:00+01:00,1793473200000,1.000000,90,1000.000,900.000,1100.000,229.000,"
            "231.500,4.347826\n"
            "kettle,2026-11-22T10:00:00+01:00,1795338000000,0.250000,90,1000.000,900.000,1100.000,229.000,"
            "231.500,4.347826\n"
            "kettle,2026-11-23T08:00:00+01:00,1795417200000,0.125000,45,1000.000,900.000,1100.000,229.000,"
            "231.500,4.347826\n"
            "kettle,2026-11-23T10:01:00+01:00,1795424460000,0.000750,0,,,,,,\n");
  auto all = run({"export", "--csv", "-", "--buckets", "--from", "2026-11-22"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(
      all.out,
      "cid,start,end,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n"
      "kettle,2026-11-22T10:00:00+01:00,2026-11-22T10:15:00+01:00,1795338000000,0.250000,90,1000.000,"
      "900.000,1100.000,229.000,231.500,4.347826\n"
      "lamp,2026-11-23T00:00:00+01:00,2026-11-23T00:15:00+01:00,1795388400000,0.010000,90,40.000,36.000,"
      "44.000,229.000,231.500,0.173913\n"
      "kettle,2026-11-23T08:00:00+01:00,2026-11-23T08:15:00+01:00,1795417200000,0.125000,45,1000.000,"
      "900.000,1100.000,229.000,231.500,4.347826\n"
      "kettle,2026-11-23T10:00:00+01:00,2026-11-23T10:15:00+01:00,1795424400000,0.000750,0,,,,,,\n"
      "lamp,2026-11-23T10:00:00+01:00,2026-11-23T10:15:00+01:00,1795424400000,0.001000,1,42.000,37.800,"
      "46.200,229.000,231.500,0.182608\n");
  auto bad = run({"export", "--csv", (dir_ / "no/such/dir.csv").string()});
  EXPECT_EQ(bad.code, exit_code::kFailed);
  EXPECT_NE(bad.err.find("cannot write"), std::string::npos);
}

TEST_F(CliTest, ExportShowsProgressOnlyOnATerminal) {
  fill();
  std::string file = (dir_ / "p.csv").string();
  std::ostringstream out, err;
  Terminal t{out, err};
  t.err_is_tty = true;
  t.now_ms = berlin("2026-11-23 12:00");
  ASSERT_EQ(pb::cli::run({"--config", config_path(), "export", "--csv", file}, t), 0) << err.str();
  EXPECT_NE(err.str().find("\rexporting [#######.......................] 25% (1/4)"), std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("\rexporting [###############...............] 50% (2/4)"), std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("] 100% (4/4)\r\x1b[K"), std::string::npos) << err.str();
  EXPECT_EQ(run({"export", "--csv", file}).err, "wrote 4 samples to " + file + "\n");  // not a TTY: no bar
}

TEST_F(CliTest, DevicesFallsBackToTheDatabaseWhenTheDaemonIsNotRunning) {
  fill();
  auto r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "CID     NAME       ONLINE  RELAY  POWER W     TODAY  LAST SEEN\n"
            "kettle  Kettle     ?       on      1000.0  125.0 Wh  2026-11-23 08:10:10 (3 h ago)\n"
            "lamp    Desk lamp  ?       -         40.0   10.0 Wh  never\n"
            "\n"
            "(from the database: daemon not reachable at " +
                sock_path() +
                ": No such file or directory; ONLINE unknown, RELAY and POWER as last stored)\n");
}

TEST_F(CliTest, RelayWithoutDaemonIsExitCode4) {
  fill();
  auto r = run({"relay", "kettle", "on"});
  EXPECT_EQ(r.code, exit_code::kNoDaemon);
  EXPECT_EQ(r.err,
            "plugbridge relay: daemon not reachable at " + sock_path() +
                ": No such file or directory\n  fix: is plugbridged running? start it (systemctl start "
                "plugbridged), or pass --socket PATH if its control_socket is elsewhere\n");
}

}  // namespace
// Global options work before or after the subcommand, as people type them.
TEST_F(CliTest, GlobalOptionsAfterTheSubcommand) {
  fill();
  auto bare = [&](std::vector<std::string> args) {
    std::ostringstream out, err;
    Terminal t{out, err};
    t.now_ms = berlin("2026-11-23 12:00");
    const int code = pb::cli::run(args, t);
    return Result{code, out.str(), err.str()};
  };
  const Result before = bare({"--config", config_path(), "energy", "--format", "csv"});
  ASSERT_EQ(before.code, 0) << before.err;
  const Result after = bare({"energy", "--format", "csv", "--config", config_path()});
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(after.out, before.out);
  const Result history = bare({"history", "kettle", "--from", "2026-11-21", "--to", "2026-11-24", "--config",
                               config_path(), "--tz", "UTC", "--format", "json"});
  EXPECT_EQ(history.code, 0) << history.err;
  EXPECT_NE(history.out.find("\"zone\": \"UTC\""), std::string::npos) << history.out;
  const Result events = bare({"events", "kettle", "--db", db_path(), "--config", config_path()});
  EXPECT_EQ(events.code, 0) << events.err;
}

TEST_F(CliTest, UnknownCommandSuggestsTheClosestOne) {
  Result r = run({"devcies"});
  EXPECT_EQ(r.code, exit_code::kUsage);
  EXPECT_EQ(r.err,
            "plugbridge: unknown command 'devcies'; did you mean 'devices'?\nRun plugbridge --help for the "
            "commands.\n");
  r = run({"hist"});
  EXPECT_NE(r.err.find("did you mean 'history'?"), std::string::npos) << r.err;
  r = run({"frobnicate"});
  EXPECT_EQ(r.code, exit_code::kUsage);
  EXPECT_EQ(r.err, "plugbridge: unknown command 'frobnicate'\nRun plugbridge --help for the commands.\n");
}

TEST_F(CliTest, HelpSaysTheExitCodesOnce) {
  for (const std::string sub : {"", "relay", "countdown", "devices", "energy", "history", "events", "export",
                                "provision", "reload", "calibrate"}) {
    std::vector<std::string> args;
    if (!sub.empty()) args.push_back(sub);
    args.push_back("--help");
    const Result r = run(args);
    EXPECT_EQ(r.code, 0) << sub;
    size_t n = 0;
    for (size_t at = r.out.find("Exit codes"); at != std::string::npos; at = r.out.find("Exit codes", at + 1))
      ++n;
    EXPECT_EQ(n, 1u) << "plugbridge " << sub << " --help:\n" << r.out;
  }
}

// Small loads: watt-hours in tables (not "0.000 kWh"), every mWh in CSV and JSON.
TEST_F(CliTest, SmallEnergyIsShownInWattHours) {
  EXPECT_EQ(energy_cell(12'400, false), "12.4 Wh");
  EXPECT_EQ(energy_cell(0, false), "0.0 Wh");
  EXPECT_EQ(energy_cell(999'949, false), "999.9 Wh");
  EXPECT_EQ(energy_cell(1'234'567, false), "1.235 kWh");
  EXPECT_EQ(energy_cell(12'345, true), "0.012345");
  fill();
  const Result t = run({"energy", "lamp"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("10.0 Wh"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("0.010"), std::string::npos) << t.out;
}

TEST_F(CliTest, DbStatsShowsTablesSocketsAndHowLongTheDiskLasts) {
  fill();
  {
    // Two hours of lamp samples, one a minute.
    store::Store db(db_path());
    store::EnergyUpdate up;
    for (int64_t i = 1; i <= 120; ++i) {
      store::SampleRow x = bucket("lamp", "2026-11-23 06:00", 10, 6, 40000);
      x.start_ms += i * 60000;
      up.samples.push_back(x);
    }
    db.commit({}, up);
  }
  auto t = run({"db", "stats"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("schema " + std::to_string(store::Store::latest_schema_version())), std::string::npos)
      << t.out;
  EXPECT_NE(t.out.find("samples "), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("RAW SAMPLES"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("Raw samples grow about"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("days of them"), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("readings"), std::string::npos) << t.out;

  auto j = run({"db", "stats", "--format", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  std::map<std::string, int64_t> samples, buckets;
  for (const auto& k : doc["sockets"]) {
    samples[k["cid"]] = k["samples"];
    buckets[k["cid"]] = k["buckets"];
    EXPECT_FALSE(k.contains("readings")) << k.dump();
  }
  EXPECT_EQ(samples, (std::map<std::string, int64_t>{{"kettle", 3}, {"lamp", 121}}));
  EXPECT_EQ(buckets, (std::map<std::string, int64_t>{{"kettle", 2}, {"lamp", 0}}));  // those rolled up
  for (const auto& k : doc["sockets"])
    if (k["cid"] == "lamp") {
      EXPECT_EQ(k["first_ms"], berlin("2026-11-23 00:00"));
      EXPECT_EQ(k["last_ms"], berlin("2026-11-23 08:00"));
    }
  int64_t table_rows = -1, total = 0;
  for (const auto& x : doc["tables"]) {
    if (x["name"] == "samples") table_rows = x["rows"];
    total += x["bytes"].get<int64_t>();
    EXPECT_NE(x["name"], "readings");
  }
  EXPECT_EQ(table_rows, 124);
  EXPECT_GT(total, 0);
  EXPECT_LE(total, doc["file_bytes"].get<int64_t>() + doc["wal_bytes"].get<int64_t>());
  // The samples' bytes over the 23 days they span.
  EXPECT_GT(doc["raw_bytes_per_day"].get<double>(), 0);
  // The size budget: history.max_db_mb (default 2048 MiB), and the raw days that fit beside the rest.
  EXPECT_NE(t.out.find("Size budget (history.max_db_mb): 2048"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("days of raw samples at this rate"), std::string::npos) << t.out;
  EXPECT_EQ(doc["budget_bytes"].get<int64_t>(), int64_t{2048} << 20);
  EXPECT_EQ(doc["used_bytes"].get<int64_t>(),
            doc["file_bytes"].get<int64_t>() - doc["free_page_bytes"].get<int64_t>());
  int64_t raw_bytes = 0;
  for (const auto& x : doc["tables"])
    if (x["name"] == "samples") raw_bytes = x["bytes"];
  EXPECT_GT(raw_bytes, 0);
  const double span_days =
      static_cast<double>(berlin("2026-11-23 08:00") - berlin("2026-10-31 20:00")) / 86'400'000;
  EXPECT_NEAR(doc["raw_bytes_per_day"].get<double>(), static_cast<double>(raw_bytes) / span_days,
              1e-6 * raw_bytes);
  const double expected_fit = static_cast<double>(doc["budget_bytes"].get<int64_t>() -
                                                  (doc["used_bytes"].get<int64_t>() - raw_bytes)) /
                              doc["raw_bytes_per_day"].get<double>();
  EXPECT_NEAR(doc["raw_days_fit"].get<double>(), expected_fit, 1e-6 * expected_fit);

  auto none = run({"--db", (dir_ / "none.db").string(), "db", "stats"});
  EXPECT_EQ(none.code, exit_code::kNoData);
}

}  // namespace pb::cli
