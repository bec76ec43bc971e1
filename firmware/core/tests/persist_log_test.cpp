#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <pbfw/flash_storage.hpp>
#include <pbfw/persist_log.hpp>
#include <pbfw/socket_core.hpp>
#include <tuple>
#include <vector>

#include "hlw8032_frames.hpp"
#include "sim_flash.hpp"

namespace pbfw {
namespace {

using test::SimFlash;

bool same(const PersistentState& a, const PersistentState& b) {
  uint8_t pa[kStatePayloadSize], pb[kStatePayloadSize];
  encode_state(a, pa);
  encode_state(b, pb);
  return a.energy_mwh == b.energy_mwh && std::memcmp(pa, pb, sizeof pa) == 0;
}

std::tuple<uint16_t, uint64_t> energy_key(const PersistentState& s) {
  return {s.energy_epoch, s.energy_mwh};
}

PersistentState sample_state() {
  PersistentState s{};
  s.boot_counter = 0x01020304;
  s.energy_mwh = 9'999'999'999;
  s.energy_epoch = 0xBEEF;
  s.relay_on = 1;
  s.has_settings = 1;
  s.tripped = 1;
  s.switch_count = 0xA1B2C3D4;
  s.current_limit_ma = 6500;
  s.over_current_duration_ms = 2500;
  s.power_limit_w = 1100;
  s.voltage_max_v = 253;
  s.voltage_min_v = 196;
  s.kv_e6 = 1'880'000;
  s.ki_e6 = 1'010'000;
  s.switch_disabled = 1;
  return s;
}

TEST(Crc32, KnownVector) {
  const char* text = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(text), 9), 0xCBF43926u);
  // Continuing a running CRC gives the same result as one pass.
  const uint32_t part = crc32(reinterpret_cast<const uint8_t*>(text), 4);
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(text) + 4, 5, part), 0xCBF43926u);
}

TEST(StateEncoding, RoundTripsEveryField) {
  const PersistentState s = sample_state();
  uint8_t buf[kStatePayloadSize];
  ASSERT_EQ(encode_state(s, buf), kStatePayloadSize);
  PersistentState back{};
  ASSERT_TRUE(decode_state(kStateFormat, buf, sizeof buf, s.energy_mwh, back));
  EXPECT_TRUE(same(s, back));
  EXPECT_EQ(back.kv_e6, s.kv_e6);
  EXPECT_EQ(back.voltage_min_v, s.voltage_min_v);
  EXPECT_EQ(back.relay_on, 1);
  EXPECT_EQ(back.switch_disabled, 1);
}

TEST(StateEncoding, OlderShorterPayloadGivesZerosAndUnknownFormatIsRefused) {
  const PersistentState s = sample_state();
  uint8_t buf[kStatePayloadSize];
  encode_state(s, buf);
  PersistentState back{};
  ASSERT_TRUE(decode_state(kStateFormat, buf, 7, 42, back));  // boot, epoch, relay only
  EXPECT_EQ(back.boot_counter, s.boot_counter);
  EXPECT_EQ(back.energy_epoch, s.energy_epoch);
  EXPECT_EQ(back.relay_on, 1);
  EXPECT_EQ(back.has_settings, 0);
  EXPECT_EQ(back.kv_e6, 0u);
  EXPECT_EQ(back.energy_mwh, 42u);
  // Issue 3's 37-byte payload (before switch_disabled): switching stays enabled.
  ASSERT_TRUE(decode_state(kStateFormat, buf, 37, 42, back));
  EXPECT_EQ(back.ki_e6, s.ki_e6);
  EXPECT_EQ(back.switch_disabled, 0);
  EXPECT_FALSE(decode_state(kStateFormat + 1, buf, sizeof buf, 0, back));
}

TEST(FlashStorage, ErasedFlashLoadsNothingThenRoundTrips) {
  SimFlash flash(2, 2048);
  {
    FlashStorage st(flash);
    PersistentState s{};
    EXPECT_FALSE(st.load(s));
    st.save(sample_state());
    EXPECT_TRUE(st.last_save_ok());
  }
  FlashStorage st(flash);
  PersistentState s{};
  ASSERT_TRUE(st.load(s));
  EXPECT_TRUE(same(s, sample_state()));
}

TEST(FlashStorage, GarbageFlashLoadsNothingAndIsReclaimed) {
  SimFlash flash(3, 1024, 7);
  flash.fill_random();
  FlashStorage st(flash);
  PersistentState s{};
  EXPECT_FALSE(st.load(s));
  PersistentState want = sample_state();
  for (int i = 0; i < 500; ++i) {
    want.energy_mwh += 10;
    st.save(want);
    ASSERT_TRUE(st.last_save_ok()) << i;
  }
  FlashStorage again(flash);
  ASSERT_TRUE(again.load(s));
  EXPECT_TRUE(same(s, want));
  EXPECT_EQ(flash.programs_on_dirty(), 0u);
}

TEST(FlashStorage, EnergyOnlyChangeIsOneDoubleWordAndUnchangedWritesNothing) {
  SimFlash flash(2, 2048);
  FlashStorage st(flash);
  PersistentState s = sample_state();
  s.energy_mwh = 1000;
  st.save(s);
  const uint64_t after_snapshot = flash.programs();
  EXPECT_EQ(after_snapshot, 3 + (kStatePayloadSize + 7) / 8);  // header, counter, payload, check
  st.save(s);
  EXPECT_EQ(flash.programs(), after_snapshot);
  s.energy_mwh = 1001;
  st.save(s);
  EXPECT_EQ(flash.programs(), after_snapshot + 1);
  EXPECT_EQ(st.log().stats().counter_updates, 1u);
  s.relay_on = 0;  // anything else: a snapshot
  st.save(s);
  EXPECT_EQ(st.log().stats().snapshots, 2u);
}

TEST(FlashStorage, CounterBeyond36BitsGoesIntoASnapshot) {
  SimFlash flash(2, 2048);
  FlashStorage st(flash);
  PersistentState s = sample_state();
  st.save(s);
  s.energy_mwh = PersistLog::kMaxCounterUpdate + 5;
  st.save(s);
  EXPECT_EQ(st.log().stats().snapshots, 2u);
  FlashStorage again(flash);
  PersistentState back{};
  ASSERT_TRUE(again.load(back));
  EXPECT_EQ(back.energy_mwh, PersistLog::kMaxCounterUpdate + 5);
}

// Index of the last double word that looks like a snapshot header.
size_t last_snapshot_word(SimFlash& flash) {
  size_t found = SIZE_MAX;
  for (size_t i = 0; i < flash.word_count(); ++i) {
    const uint64_t w = flash.word(i);
    if ((w & 0xFF) == 0xC3 && ((w >> 24) & 0xFF) == 0x5A) found = i;
  }
  return found;
}

TEST(FlashStorage, CorruptSnapshotFallsBackToThePreviousState) {
  SimFlash flash(2, 2048);
  FlashStorage st(flash);
  PersistentState a = sample_state();
  a.relay_on = 1;
  st.save(a);
  a.energy_mwh += 5;
  st.save(a);  // counter update after snapshot A
  PersistentState b = a;
  b.relay_on = 0;
  st.save(b);
  const size_t at = last_snapshot_word(flash);
  ASSERT_NE(at, SIZE_MAX);
  flash.word(at + 2) ^= 0x0100;  // one payload bit: CRC mismatch

  FlashStorage again(flash);
  PersistentState s{};
  ASSERT_TRUE(again.load(s));
  EXPECT_TRUE(same(s, a));
}

TEST(FlashStorage, CorruptOrUnreadableCounterUpdatesAreSkipped) {
  SimFlash flash(2, 2048);
  FlashStorage st(flash);
  PersistentState s = sample_state();
  s.energy_mwh = 100;
  st.save(s);
  const size_t first_counter = last_snapshot_word(flash) + 3 + (kStatePayloadSize + 7) / 8;
  for (uint64_t e : {200u, 300u, 400u}) {
    s.energy_mwh = e;
    st.save(s);
  }
  flash.word(first_counter + 2) ^= uint64_t{1} << 20;  // the 400 update: bad check bits
  {
    FlashStorage again(flash);
    PersistentState back{};
    ASSERT_TRUE(again.load(back));
    EXPECT_EQ(back.energy_mwh, 300u);
  }
  flash.cell(first_counter + 1) = SimFlash::Cell::Unreadable;  // the 300 update: ECC error
  FlashStorage again(flash);
  PersistentState back{};
  ASSERT_TRUE(again.load(back));
  EXPECT_EQ(back.energy_mwh, 200u);
  // And it keeps working after the damage.
  s.energy_mwh = 500;
  again.save(s);
  FlashStorage third(flash);
  ASSERT_TRUE(third.load(back));
  EXPECT_EQ(back.energy_mwh, 500u);
  EXPECT_EQ(flash.programs_on_dirty(), 0u);
}

TEST(FlashStorage, WornCellsAreDetectedByReadBackAndWrittenElsewhere) {
  SimFlash flash(3, 512);
  for (size_t i = 3; i < flash.word_count(); i += 23) flash.add_bad_word(i);
  FlashStorage st(flash);
  PersistentState s = sample_state();
  for (int i = 0; i < 300; ++i) {
    s.energy_mwh += 7;
    if (i % 40 == 0) s.relay_on ^= 1;
    st.save(s);
    ASSERT_TRUE(st.last_save_ok()) << i;
    FlashStorage reader(flash);
    PersistentState back{};
    ASSERT_TRUE(reader.load(back)) << i;
    ASSERT_TRUE(same(back, s)) << i;
  }
  EXPECT_GT(st.log().stats().failed_writes, 0u);
}

TEST(PersistLog, NeedsNoEraseUntilAPageFillsAndRotatesThroughAllPages) {
  SimFlash flash(4, 2048);
  PersistLog log(flash);
  EXPECT_FALSE(log.mount());
  const uint8_t payload[5] = {1, 2, 3, 4, 5};
  ASSERT_TRUE(log.write_snapshot(9, payload, sizeof payload, 0));
  EXPECT_EQ(log.stats().erases, 1u);  // the first page is erased before use: its contents are unknown
  uint64_t c = 0;
  while (log.stats().erases < 9) ASSERT_TRUE(log.write_counter(++c));
  // Ring order: every page erased before any is erased a third time.
  for (uint32_t n : flash.erase_counts()) EXPECT_GE(n, 2u);
  PersistLog again(flash);
  ASSERT_TRUE(again.mount());
  EXPECT_EQ(again.counter(), c);
  EXPECT_EQ(again.format(), 9);
  ASSERT_EQ(again.payload_size(), sizeof payload);
  EXPECT_EQ(std::memcmp(again.payload(), payload, sizeof payload), 0);
}

// Endurance on the real layout: 8 pages of 2 KB (16 KB of data flash on the STM32G0), one save per interval
// under constant load, a snapshot at every 100th save (relay switching, boots), one boot per 1 000 saves.
TEST(PersistLog, EnduranceEstimate) {
  SimFlash flash(8, 2048);
  std::optional<FlashStorage> st;
  st.emplace(flash);
  PersistentState s = sample_state();
  s.energy_mwh = 0;
  constexpr int kSaves = 200'000;
  for (int i = 1; i <= kSaves; ++i) {
    if (i % 1000 == 0) {  // power cut between saves and reboot
      st.emplace(flash);
      PersistentState back{};
      ASSERT_TRUE(st->load(back));
      ASSERT_TRUE(same(back, s)) << i;
      ++s.boot_counter;
    }
    s.energy_mwh += 16'667;  // 1 kW for one minute
    if (i % 100 == 0) s.relay_on ^= 1;
    st->save(s);
  }
  uint32_t lo = UINT32_MAX, hi = 0, total = 0;
  for (uint32_t n : flash.erase_counts()) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
    total += n;
  }
  EXPECT_LE(hi - lo, 1u) << "erases must be spread evenly over the pages";
  const double saves_per_erase = double(kSaves) / total;
  const double lifetime_saves = saves_per_erase * 1000.0 * flash.page_count();
  const double years_at_60s = lifetime_saves * 60.0 / (365.25 * 86400.0);
  const double years_at_300s = lifetime_saves * 300.0 / (365.25 * 86400.0);
  std::printf(
      "endurance: %u erases for %d saves (%.1f saves per page erase); 1000 cycles x 8 pages = "
      "%.0f saves = %.1f years at one save per 60 s, %.1f years at one per 300 s\n",
      total, kSaves, saves_per_erase, lifetime_saves, years_at_60s, years_at_300s);
  // A 2 KB page holds 256 double words; nearly all of them must be one-word energy updates.
  EXPECT_GT(saves_per_erase, 200.0);
  EXPECT_EQ(flash.programs_on_dirty(), 0u);
}

// The power-loss test: a life of saves with increasing energy (relay switching, a settings change, a factory
// reset that starts a new epoch) across several page rotations. For every k, the power is cut during the k-th
// program/erase; then, after each reboot (a new FlashStorage on the same flash: load, boot counter + 1, save,
// as SocketCore::boot does), more cuts follow at pseudo-random distances. After every reboot the loaded
// state must be exactly the last completed save or the one being written, so the energy never goes back
// and never loses more than the save in flight.
struct Life {
  static constexpr int kSaves = 260;
  static PersistentState at(int i, uint32_t boot) {
    PersistentState s{};
    s.boot_counter = boot;
    s.has_settings = 1;
    s.current_limit_ma = i < 60 ? 5000 : 6000;
    s.kv_e6 = i < 200 ? 1'880'000 : 1'900'000;
    s.ki_e6 = 1'000'000;
    s.relay_on = static_cast<uint8_t>((i / 16) % 2);
    s.switch_count = static_cast<uint32_t>(i / 16);
    if (i < 130) {
      s.energy_mwh = 1000 + 37 * static_cast<uint64_t>(i);
    } else {  // factory reset at i = 130: energy restarts in a new epoch
      s.energy_epoch = 1;
      s.energy_mwh = 37 * static_cast<uint64_t>(i - 130);
    }
    return s;
  }
};

struct PowerLossResult {
  int reboots = 0;
  uint64_t ops = 0;  // program/erase operations of the whole life
};

// Lives Life on `flash`: the power is cut at operation `first_cut` (< 0: never), then `extra_cuts` more times
// at pseudo-random distances. Checks the invariants after every reboot.
PowerLossResult live(SimFlash& flash, int64_t first_cut, int extra_cuts, uint32_t seed) {
  PowerLossResult r;
  std::mt19937 rng(seed);
  std::optional<PersistentState> completed;  // the last save that returned with the power on
  std::optional<PersistentState> in_flight;  // the save the power cut interrupted
  bool in_flight_is_life = false;
  std::optional<std::tuple<uint16_t, uint64_t>> highest;
  if (first_cut >= 0) flash.schedule_cut(static_cast<uint64_t>(first_cut));
  int i = 0;  // next save of the life
  for (;;) {
    FlashStorage st(flash);  // boot
    PersistentState loaded{};
    const bool ok = st.load(loaded);
    if (in_flight) {
      const bool got_completed = ok && completed && same(loaded, *completed);
      const bool got_in_flight = ok && same(loaded, *in_flight);
      if (completed) {
        EXPECT_TRUE(got_completed || got_in_flight)
            << "first cut at op " << first_cut << ", reboot " << r.reboots << ": loaded " << ok << " energy "
            << loaded.energy_mwh << " epoch " << loaded.energy_epoch << " relay " << int{loaded.relay_on}
            << "; last completed " << completed->energy_mwh << ", in flight " << in_flight->energy_mwh;
      } else {
        EXPECT_TRUE(!ok || got_in_flight) << "first cut at op " << first_cut;
      }
      if (::testing::Test::HasFailure()) return r;
      if (got_in_flight && !got_completed) {
        completed = in_flight;
        if (in_flight_is_life) ++i;
      }
      in_flight.reset();
    }
    if (ok) {
      if (highest) {
        EXPECT_GE(energy_key(loaded), *highest) << "energy went back at reboot " << r.reboots;
      }
      highest = energy_key(loaded);
    }
    // As SocketCore::boot: the loaded state (or defaults) with the boot counter + 1, saved at once.
    PersistentState next = ok ? loaded : Life::at(i, 0);
    const uint32_t boot = next.boot_counter + 1;
    next.boot_counter = boot;
    for (bool life = false; !in_flight && (!life || i < Life::kSaves); life = true) {
      if (life) next = Life::at(i, boot);
      st.save(next);
      if (!flash.powered()) {
        in_flight = next;
        in_flight_is_life = life;
      } else {
        completed = next;
        if (life) ++i;
      }
    }
    if (!in_flight) break;  // the life is over
    flash.power_on();
    if (r.reboots++ < extra_cuts) flash.schedule_cut(rng() % 80);
  }
  r.ops = flash.ops();
  // The end of the life is stored.
  FlashStorage st(flash);
  PersistentState last{};
  EXPECT_TRUE(st.load(last));
  EXPECT_TRUE(completed && same(last, *completed));
  return r;
}

constexpr uint32_t kTestPages = 3;
constexpr uint32_t kTestPageSize = 512;  // 64 double words: a rotation every ~50 saves

TEST(PowerLoss, LifeWithoutCutsRotatesSeveralTimes) {
  SimFlash flash(kTestPages, kTestPageSize);
  const PowerLossResult r = live(flash, -1, 0, 1);
  EXPECT_EQ(r.reboots, 0);
  for (uint32_t n : flash.erase_counts()) EXPECT_GE(n, 2u) << "the life must wrap the ring of pages";
  std::printf("life: %llu program/erase operations\n", static_cast<unsigned long long>(r.ops));
}

// One cut at every single program and erase of the life. Besides the state, checks that the log never
// programs a word that is not erased, not even one that only reads as erased.
void cut_at_every_operation(uint32_t pages, uint32_t page_size) {
  uint64_t total_ops = 0;
  {
    SimFlash flash(pages, page_size);
    total_ops = live(flash, -1, 0, 1).ops;
  }
  ASSERT_GT(total_ops, 300u);
  uint64_t weak = 0, dirty = 0;
  for (uint64_t k = 0; k < total_ops; ++k) {
    SimFlash flash(pages, page_size, static_cast<uint32_t>(k));
    const PowerLossResult r = live(flash, static_cast<int64_t>(k), 0, static_cast<uint32_t>(k));
    ASSERT_FALSE(::testing::Test::HasFailure()) << "cut at op " << k;
    ASSERT_EQ(r.reboots, 1) << "cut at op " << k;
    weak += flash.programs_on_weak();
    dirty += flash.programs_on_dirty();
  }
  EXPECT_EQ(weak, 0u);
  EXPECT_EQ(dirty, 0u);
}

TEST(PowerLoss, CutAtEveryOperation) {
  cut_at_every_operation(kTestPages, kTestPageSize);
}

TEST(PowerLoss, CutAtEveryOperationWithTheMinimumOfTwoPages) {
  cut_at_every_operation(2, kTestPageSize);
}

// The same with every torn outcome the simulator knows (several seeds per step) and further cuts after each
// reboot, many of them during the recovery writes themselves.
TEST(PowerLoss, RepeatedCutsFromEveryOperation) {
  uint64_t total_ops = 0;
  {
    SimFlash flash(kTestPages, kTestPageSize);
    total_ops = live(flash, -1, 0, 1).ops;
  }
  int reboots = 0;
  for (uint64_t k = 0; k < total_ops; ++k) {
    for (uint32_t seed = 0; seed < 3; ++seed) {
      const uint32_t s = static_cast<uint32_t>(k * 3 + seed + 1000);
      SimFlash flash(kTestPages, kTestPageSize, s);
      reboots += live(flash, static_cast<int64_t>(k), 6, s).reboots;
      ASSERT_FALSE(HasFailure()) << "first cut at op " << k << " seed " << s;
    }
  }
  std::printf("%d reboots after power cuts checked\n", reboots);
}

// The core on top: relay and energy come back after a power cut.
class NullHal final : public Hal {
 public:
  uint64_t now_ms() override { return now; }
  void set_relay(bool on) override { relay = on; }
  void set_led(uint8_t, uint8_t, uint8_t) override {}
  uint64_t now = 5;
  bool relay = false;
};

class NullTransport final : public LanTransport {
 public:
  bool send(const uint8_t*, size_t) override { return true; }
  void close() override {}
};

TEST(FlashStorage, SocketCoreRestoresRelayAndBootCounterFromFlash) {
  SimFlash flash(8, 2048);
  for (uint32_t expected_boot = 1; expected_boot <= 3; ++expected_boot) {
    NullHal hal;
    NullTransport transport;
    FlashStorage storage(flash);
    Record records[8];
    SocketCore core(hal, storage, transport, SocketConfig{"cid", "fw"}, records, 8);
    core.boot();
    EXPECT_EQ(core.boot_counter(), expected_boot);
    EXPECT_EQ(core.relay_on(), expected_boot > 1);  // switched on during the first life
    core.set_relay(true, proto::Cause::Button);
    EXPECT_TRUE(storage.last_save_ok());
  }
}

// The whole socket: SocketCore saving its energy every persist interval under a constant load through
// FlashStorage. The power is cut at every flash operation of two loaded minutes; after the reboot the energy
// the core restores is at most one persist interval (plus the frame in flight) behind the energy it had
// counted when the power went, and never more than that.
struct CoreRig {
  static constexpr uint32_t kPersistMs = 1000;
  explicit CoreRig(SimFlash& flash) : storage(flash) {
    SocketConfig cfg{"cid", "fw"};
    cfg.persist_interval_ms = kPersistMs;
    core.emplace(hal, storage, transport, cfg, records, 8);
    core->boot();
  }
  // One 50 ms step: a meter frame with `pulses` more PF pulses, then a tick.
  void step(uint16_t pulses) {
    hal.now += 50;
    if (pf + pulses > 0xFFFF) wrap = !wrap;  // the chip toggles the bit when its pulse counter wraps
    pf = static_cast<uint16_t>(pf + pulses);
    testing::FrameRegs r = testing::regs_for(230'000, 2'609'000, 600'000, pf, wrap);
    for (uint8_t b : testing::build_frame(r)) core->on_meter_byte(b, false);
    core->tick();
  }
  NullHal hal;
  NullTransport transport;
  FlashStorage storage;
  Record records[8];
  std::optional<SocketCore> core;
  uint16_t pf = 0;
  bool wrap = false;
};

TEST(PowerLoss, SocketCoreLosesAtMostOnePersistInterval) {
  constexpr int kSteps = 2400;  // 2 minutes of 50 ms frames
  uint64_t total_ops = 0;
  {
    SimFlash flash(3, 512);
    CoreRig rig(flash);
    rig.core->button_click();
    for (int i = 0; i < kSteps; ++i) rig.step(40);
    total_ops = flash.ops();
  }
  ASSERT_GT(total_ops, 100u);
  uint64_t max_loss = 0;
  for (uint64_t k = 0; k < total_ops; ++k) {
    SimFlash flash(3, 512, static_cast<uint32_t>(k));
    flash.schedule_cut(k);
    std::vector<uint64_t> counted;  // the core's energy after each step
    bool was_on = false;
    {
      CoreRig rig(flash);
      if (flash.powered()) rig.core->button_click();
      for (int i = 0; i < kSteps && flash.powered(); ++i) {
        rig.step(40);
        counted.push_back(rig.core->energy().energy_mwh());
      }
      was_on = rig.core->relay_on();
      ASSERT_FALSE(flash.powered()) << "op " << k << " never happened";
    }
    flash.power_on();
    CoreRig after(flash);
    const uint64_t restored = after.core->energy().energy_mwh();
    const uint64_t at_cut = counted.empty() ? 0 : counted.back();
    // Saves happen at most kPersistMs apart: the state counted kPersistMs + one frame before the cut is
    // stored.
    const size_t lag = CoreRig::kPersistMs / 50 + 1;
    const uint64_t floor = counted.size() > lag ? counted[counted.size() - 1 - lag] : 0;
    max_loss = std::max(max_loss, at_cut - std::min(restored, at_cut));
    EXPECT_LE(restored, at_cut) << "cut at op " << k;
    EXPECT_GE(restored, floor) << "cut at op " << k << " (" << counted.size() << " steps)";
    if (counted.size() > 1) {  // the relay switch-on was saved before the first frame
      EXPECT_EQ(after.core->relay_on(), was_on) << "cut at op " << k;
    }
    ASSERT_FALSE(HasFailure());
  }
  // The frames carry 40 PF pulses of ~2.8 mWh each: ~2.2 Wh per 1 s persist interval.
  std::printf("%llu cuts: at most %llu mWh lost\n", static_cast<unsigned long long>(total_ops),
              static_cast<unsigned long long>(max_loss));
}

}  // namespace
}  // namespace pbfw
