// `plugbridge export [--from] [--to] --csv FILE`: streams raw samples (history.raw_resolution_s;
// or, with --buckets, the 15-minute buckets, kept forever) to CSV without holding them in memory; a
// progress bar on a terminal.
#include <cerrno>
#include <cstring>
#include <fstream>

#include "commands.hpp"

namespace pb::cli {
namespace {

class Progress {
 public:
  Progress(std::ostream& err, bool enabled, size_t total)
      : err_(err), enabled_(enabled && total > 0), total_(total) {}
  void step() {
    ++done_;
    if (!enabled_) return;
    int pct = static_cast<int>(done_ * 100 / total_);
    if (pct == last_pct_) return;
    last_pct_ = pct;
    constexpr int kWidth = 30;
    int filled = pct * kWidth / 100;
    err_ << "\rexporting [" << std::string(static_cast<size_t>(filled), '#')
         << std::string(static_cast<size_t>(kWidth - filled), '.') << "] " << pct << "% (" << done_ << "/"
         << total_ << ")" << std::flush;
  }
  void finish() {
    if (enabled_ && last_pct_ >= 0) err_ << "\r\x1b[K" << std::flush;
  }
  size_t done() const { return done_; }

 private:
  std::ostream& err_;
  bool enabled_;
  size_t total_, done_ = 0;
  int last_pct_ = -1;
};

class Export : public Command {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* sub = app.add_subcommand("export", "stream raw samples (or 15-minute buckets) to a CSV file");
    sub->add_option("--csv", file_, "output file, - for standard output")->required();
    sub->add_option("--from", from_, "start (default: everything stored)");
    sub->add_option("--to", to_, "end, exclusive (default: now)");
    sub->add_option("--cid", cid_, "only this socket (default: all)");
    sub->add_flag("--buckets", buckets_,
                  "export the 15-minute buckets instead of raw samples (raw samples are kept only for "
                  "history.raw_days, and the oldest first beyond history.max_db_mb)");
    return sub;
  }

  int run(Context& ctx) override {
    auto& store = ctx.store();
    if (!cid_.empty()) ctx.require_known_cid(cid_);
    int64_t from = from_.empty() ? INT64_MIN / 2 : ctx.parse_time(from_, "--from");
    int64_t to = to_.empty() ? ctx.now_ms() + 1 : ctx.parse_time(to_, "--to");
    std::ofstream file;
    std::ostream* out = &ctx.term().out;
    if (file_ != "-") {
      file.open(file_, std::ios::binary | std::ios::trunc);
      if (!file)
        throw CliError(exit_code::kFailed, "cannot write " + file_ + ": " + std::strerror(errno) +
                                               "\n  fix: choose a writable path");
      out = &file;
    }
    // The progress bar's count and the rows: the same samples.
    const store::Reader::Snapshot snapshot(store);
    size_t rows = 0;
    // The values shared by samples and buckets.
    auto values = [&](const store::BucketRow& b) {
      *out << fixed(b.energy_mwh, 1000000, 6) << ',' << b.samples << ',';
      // A quantity the meter did not measure in the interval: an empty field.
      const auto cell = [](const std::optional<int64_t>& v, int64_t divisor, int decimals) {
        return v ? fixed(*v, divisor, decimals) : std::string();
      };
      if (b.samples > 0)
        *out << fixed(b.power_sum_mw / b.samples, 1000, 3) << ',' << fixed(b.power_min_mw, 1000, 3) << ','
             << fixed(b.power_max_mw, 1000, 3) << ',';
      else
        *out << ",,,";
      *out << cell(b.voltage_min_mv, 1000, 3) << ',' << cell(b.voltage_max_mv, 1000, 3) << ','
           << cell(b.current_max_ua, 1000000, 6) << '\n';
    };
    if (buckets_) {
      *out << "cid,start,end,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n";
      store.each_bucket(cid_, from, to, [&](const store::BucketRow& b) {
        *out << csv_field(b.cid) << ',' << ctx.iso_time(b.start_ms) << ','
             << ctx.iso_time(b.start_ms + 900000) << ',' << b.start_ms << ',';
        values(b);
        ++rows;
      });
    } else {
      Progress progress(ctx.term().err, ctx.term().err_is_tty && file_ != "-",
                        ctx.term().err_is_tty ? store.count_samples(cid_, from, to) : 0);
      *out << "cid,start,start_ms,energy_kwh,samples,mean_w,min_w,max_w,min_v,max_v,max_a\n";
      store.each_sample(cid_, from, to, [&](const store::SampleRow& r) {
        *out << csv_field(r.cid) << ',' << ctx.iso_time(r.start_ms) << ',' << r.start_ms << ',';
        values(r);
        progress.step();
        ++rows;
        return static_cast<bool>(*out);
      });
      progress.finish();
    }
    out->flush();
    if (!*out)
      throw CliError(exit_code::kFailed,
                     "writing " + file_ + " failed after " + std::to_string(rows) + " rows (disk full?)");
    if (file_ != "-")
      ctx.term().err << "wrote " << rows << (buckets_ ? " buckets" : " samples") << " to " << file_ << '\n';
    return exit_code::kOk;
  }

 private:
  std::string file_, from_, to_, cid_;
  bool buckets_ = false;
};

}  // namespace

std::unique_ptr<Command> make_export() {
  return std::make_unique<Export>();
}

}  // namespace pb::cli
