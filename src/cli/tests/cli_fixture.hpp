// The CLI in-process on a prepared database (exact outputs), and against a control socket served by
// pb::control::Server with a scripted handler: the fixture shared by the CLI's test files.
#pragma once

#include <date/tz.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include "context.hpp"
#include "plugbridge/cli/cli.hpp"
#include "plugbridge/control/control_server.hpp"
#include "plugbridge/store/migrations.hpp"
#include "plugbridge/store/store.hpp"

namespace pb::cli::test {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline constexpr const char* kZone = "Europe/Berlin";

// Unix ms of a Berlin wall time "YYYY-MM-DD HH:MM".
inline int64_t berlin(const std::string& text) {
  std::istringstream in(text);
  date::local_seconds lt;
  in >> date::parse("%Y-%m-%d %H:%M", lt);
  EXPECT_FALSE(in.fail()) << text;
  auto zt = date::make_zoned(date::locate_zone(kZone), lt, date::choose::earliest);
  return std::chrono::duration_cast<std::chrono::milliseconds>(zt.get_sys_time().time_since_epoch()).count();
}

inline store::BucketUpdate bucket(const std::string& cid, const std::string& local, int64_t mwh,
                                  int64_t samples = 0, int64_t mean_mw = 0) {
  store::BucketUpdate b;
  b.cid = cid;
  b.start_ms = berlin(local);
  b.energy_mwh = mwh;
  b.samples = samples;
  b.power_sum_mw = mean_mw * samples;
  if (samples) {
    b.power_min_mw = mean_mw * 9 / 10;
    b.power_max_mw = mean_mw * 11 / 10;
    b.voltage_min_mv = 229000;
    b.voltage_max_mv = 231500;
    b.current_max_ua = mean_mw * 1000 / 230;
  }
  return b;
}

struct Result {
  int code;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "pbcli-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    std::ofstream(config_path()) << "gateway_id: g\n"
                                    "uplink: {enabled: false}\n"
                                    "database: pb.db\n"
                                    "control_socket: c.sock\n"
                                    "timezone: Europe/Berlin\n"
                                    "sockets:\n"
                                    "  - cid: kettle\n"
                                    "    product_id: p\n"
                                    "    secret: 5f3a9c1e7b2d48e06a91c3f7d2b8e415\n"
                                    "    name: Kettle\n"
                                    "  - cid: lamp\n"
                                    "    product_id: p\n"
                                    "    secret: c4e81b7f29a05d36e7f2a9c14b6d3085\n"
                                    "    name: Desk lamp\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string config_path() const { return (dir_ / "pb.yaml").string(); }
  std::string db_path() const { return (dir_ / "pb.db").string(); }
  std::string sock_path() const { return (dir_ / "c.sock").string(); }

  // kettle: 1 kWh on 31 Oct, 0.25 kWh yesterday 10:00, 0.125 kWh today 08:00; lamp 10 Wh today 00:00.
  // The samples before today are rolled up into the buckets, today's are not yet.
  void fill() {
    store::Store db(db_path());
    store::EnergyUpdate up;
    up.samples = {bucket("kettle", "2026-10-31 20:00", 1000000, 90, 1000000),
                  bucket("kettle", "2026-11-22 10:00", 250000, 90, 1000000),
                  bucket("kettle", "2026-11-23 08:00", 125000, 45, 1000000),
                  bucket("lamp", "2026-11-23 00:00", 10000, 90, 40000)};
    // kettle's all-time total comes from its state (its newest reading at 08:10:10); lamp has
    // none (summed from its buckets).
    up.states.push_back({"kettle", 3, 18, berlin("2026-11-23 08:10") + 10500, 123456789, 1, 1375000});
    std::vector<store::EventRow> events;
    events.push_back({"kettle", berlin("2026-11-23 08:00"), "relay", 3, 5, 1, R"({"cause":"button"})"});
    events.push_back(
        {"kettle", berlin("2026-11-23 08:30"), "over_current", 3, 6, 5230, R"({"cause":"protection"})"});
    events.push_back({"lamp", berlin("2026-11-23 09:00"), "command", std::nullopt, std::nullopt, 2001,
                      R"({"code":2001,"from":"local","request_id":"local-1","why":"socket is offline"})"});
    db.commit(events, up);
    db.roll_up(berlin("2026-11-23 00:00"));
  }

  Result run(std::vector<std::string> args, bool tty = false, bool no_color = false) {
    std::ostringstream out, err;
    Terminal t{out, err};
    t.out_is_tty = tty;
    t.no_color = no_color;
    t.width = width_;
    t.now_ms = berlin("2026-11-23 12:00");
    t.after_socket_read = after_socket_read_;
    args.insert(args.begin(), {"--config", config_path()});
    int code = pb::cli::run(args, t);
    return {code, out.str(), err.str()};
  }

  fs::path dir_;
  std::function<void(const std::string&)> after_socket_read_;
  int width_ = 60;  // terminal columns
};

// A control socket answering like the daemon, on its own thread.
class FakeDaemon {
 public:
  FakeDaemon(const std::string& path, control::Handler h) {
    control::ServerOptions o;
    o.path = path;
    server_ = std::make_unique<control::Server>(io_, o, std::move(h));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeDaemon() {
    boost::asio::post(io_, [this] { server_.reset(); });
    work_.reset();
    thread_.join();
  }
  std::vector<json> requests;  // written on the io thread, read after the CLI returned

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::unique_ptr<control::Server> server_;
  std::thread thread_;
};

}  // namespace pb::cli::test
