// A fixture for the store's tests: a database path in a fresh temporary directory (removed
// afterwards), and raw SQL on that file, bypassing the Store (to inspect or tamper with it).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "plugbridge/store/store.hpp"

namespace pb::store {

class TempDbTest : public ::testing::Test {
 protected:
  // A sample (or bucket: the same shape) of `samples` readings around power_mw, with mwh of energy.
  static BucketUpdate sample(const std::string& cid, int64_t start_ms, int64_t mwh, int64_t samples = 0,
                             int64_t power_mw = 0) {
    BucketUpdate b;
    b.cid = cid;
    b.start_ms = start_ms;
    b.energy_mwh = mwh;
    b.samples = samples;
    b.power_sum_mw = power_mw * samples;
    if (samples > 0) {
      b.power_min_mw = power_mw - 10;
      b.power_max_mw = power_mw + 10;
      b.voltage_min_mv = 229000 + power_mw % 7;
      b.voltage_max_mv = 231000 + power_mw % 5;
      b.current_max_ua = power_mw * 5;
    }
    return b;
  }

  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pbstoreXXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = (dir_ / "t.db").string();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void raw_exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
  std::string db_;
};

}  // namespace pb::store
