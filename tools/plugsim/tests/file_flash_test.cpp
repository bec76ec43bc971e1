#include "plugsim/file_flash.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace plugsim {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/plugsim-flash-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(FileFlash, NewFileIsErasedAndProgramsOnlyErasedWords) {
  TempDir dir;
  FileFlash flash(dir.path() / "a.flash");
  EXPECT_EQ(std::filesystem::file_size(dir.path() / "a.flash"), 8u * 2048u);
  uint64_t w = 0;
  ASSERT_TRUE(flash.read(8, w));
  EXPECT_EQ(w, pbfw::Flash::kErased);
  EXPECT_TRUE(flash.program(8, 0x1122334455667788ull));
  ASSERT_TRUE(flash.read(8, w));
  EXPECT_EQ(w, 0x1122334455667788ull);
  EXPECT_FALSE(flash.program(8, 0));  // not erased
  EXPECT_FALSE(flash.read(8u * 2048u, w));
  EXPECT_TRUE(flash.erase_page(0));
  ASSERT_TRUE(flash.read(8, w));
  EXPECT_EQ(w, pbfw::Flash::kErased);
}

TEST(FileFlash, StorageSurvivesReopening) {
  TempDir dir;
  const auto path = dir.path() / "sock.flash";
  pbfw::PersistentState s{};
  {
    FlashFileStorage st(path, 1234);
    ASSERT_TRUE(st.load(s));  // empty flash: a fresh state with the given boot counter
    EXPECT_EQ(s.boot_counter, 1234u);
    s.boot_counter = 1235;
    s.relay_on = 1;
    for (uint64_t e = 1; e <= 1000; ++e) {  // enough to rotate through pages
      s.energy_mwh = e * 100;
      st.save(s);
    }
    EXPECT_GT(st.log().stats().erases, 1u);
  }
  FlashFileStorage again(path, 99);
  pbfw::PersistentState back{};
  ASSERT_TRUE(again.load(back));
  EXPECT_EQ(back.boot_counter, 1235u);
  EXPECT_EQ(back.relay_on, 1);
  EXPECT_EQ(back.energy_mwh, 100'000u);
}

}  // namespace
}  // namespace plugsim
