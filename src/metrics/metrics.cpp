#include "plugbridge/metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <pbfw/proto.hpp>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "plugbridge/common/log.hpp"
#include "plugbridge/gateway/gateway.hpp"

namespace pb::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A counter that follows a running total (the gateway keeps the totals; prometheus counters only
// go up by increments).
struct Total {
  prometheus::Counter* counter = nullptr;
  double seen = 0;
  void set(double total) {
    if (total > seen) counter->Increment(total - seen);
    seen = total;
  }
};

// A prometheus histogram that follows a gateway::LatencyHistogram (same bounds).
struct FollowedHistogram {
  prometheus::Histogram* histogram = nullptr;
  gateway::LatencyHistogram seen;
  void set(const gateway::LatencyHistogram& now) {
    if (now.count <= seen.count) return;
    std::vector<double> increments(now.counts.size());
    for (size_t i = 0; i < now.counts.size(); ++i)
      increments[i] = static_cast<double>(now.counts[i] - seen.counts[i]);
    histogram->ObserveMultiple(increments, now.sum_s - seen.sum_s);
    seen = now;
  }
};

prometheus::Histogram::BucketBoundaries latency_bounds() {
  const auto& b = gateway::LatencyHistogram::kBounds;
  return {b.begin(), b.end()};
}

}  // namespace

struct Exporter::Impl {
  Impl(boost::asio::io_context& io, const gateway::Gateway& g, Options o)
      : gw(g),
        options(std::move(o)),
        timer(io),
        registry(std::make_shared<prometheus::Registry>()),
        sessions_up(prometheus::BuildGauge()
                        .Name("plugbridge_sessions_up")
                        .Help("Roster sockets with a LAN session")
                        .Register(*registry)
                        .Add({})),
        roster_size(prometheus::BuildGauge()
                        .Name("plugbridge_roster_sockets")
                        .Help("Sockets in the roster")
                        .Register(*registry)
                        .Add({})),
        handshakes_failed(prometheus::BuildCounter()
                              .Name("plugbridge_lan_handshakes_failed_total")
                              .Help("LAN connections that failed before their Hello, by reason")
                              .Register(*registry)),
        readings_received{&prometheus::BuildCounter()
                               .Name("plugbridge_readings_received_total")
                               .Help("Readings received from the sockets")
                               .Register(*registry)
                               .Add({})},
        readings_committed{&prometheus::BuildCounter()
                                .Name("plugbridge_readings_committed_total")
                                .Help("Readings stored in the database")
                                .Register(*registry)
                                .Add({})},
        commits{&prometheus::BuildCounter()
                     .Name("plugbridge_commits_total")
                     .Help("Successful database commits")
                     .Register(*registry)
                     .Add({})},
        commits_failed{&prometheus::BuildCounter()
                            .Name("plugbridge_commits_failed_total")
                            .Help("Database commits that failed (retried)")
                            .Register(*registry)
                            .Add({})},
        commit_seconds{&prometheus::BuildHistogram()
                            .Name("plugbridge_commit_duration_seconds")
                            .Help("Duration of the database commits")
                            .Register(*registry)
                            .Add({}, latency_bounds()),
                       {}},
        command_seconds{&prometheus::BuildHistogram()
                             .Name("plugbridge_command_duration_seconds")
                             .Help("Commands from their arrival to the socket's confirmation")
                             .Register(*registry)
                             .Add({}, latency_bounds()),
                        {}},
        commands(prometheus::BuildCounter()
                     .Name("plugbridge_commands_total")
                     .Help("Commands answered (cloud and local), by Tuya result code")
                     .Register(*registry)),
        records_waiting(prometheus::BuildGauge()
                            .Name("plugbridge_records_waiting")
                            .Help("Readings and events in memory waiting for their commit")
                            .Register(*registry)
                            .Add({})),
        last_commit(prometheus::BuildGauge()
                        .Name("plugbridge_last_commit_timestamp_seconds")
                        .Help("When the last successful commit ended (unix time)")
                        .Register(*registry)
                        .Add({})),
        storage_failing(prometheus::BuildGauge()
                            .Name("plugbridge_storage_failing")
                            .Help("1 while database commits fail")
                            .Register(*registry)
                            .Add({})),
        database_bytes(prometheus::BuildGauge()
                           .Name("plugbridge_database_size_bytes")
                           .Help("The database file and its WAL")
                           .Register(*registry)
                           .Add({})),
        disk_written{
            &prometheus::BuildCounter()
                 .Name("plugbridge_disk_written_bytes_total")
                 .Help("Bytes the daemon caused to be written to storage (/proc/self/io write_bytes)")
                 .Register(*registry)
                 .Add({})},
        clock_trusted(prometheus::BuildGauge()
                          .Name("plugbridge_clock_trusted")
                          .Help("1 while the daemon believes the system clock")
                          .Register(*registry)
                          .Add({})),
        uplink_connected(prometheus::BuildGauge()
                             .Name("plugbridge_uplink_connected")
                             .Help("1 while the uplink is connected")
                             .Register(*registry)),
        uplink_outbox(prometheus::BuildGauge()
                          .Name("plugbridge_uplink_outbox_messages")
                          .Help("Messages waiting to go out on the uplink (stored or in flight)")
                          .Register(*registry)),
        uplink_published(prometheus::BuildCounter()
                             .Name("plugbridge_uplink_published_total")
                             .Help("Messages the uplink's broker acknowledged")
                             .Register(*registry)),
        uplink_failed(prometheus::BuildCounter()
                          .Name("plugbridge_uplink_failed_total")
                          .Help("Messages not sent or not acknowledged before the link dropped")
                          .Register(*registry)),
        socket_power(prometheus::BuildGauge()
                         .Name("plugbridge_socket_power_watts")
                         .Help("A socket's newest committed power reading (NaN: not measured)")
                         .Register(*registry)),
        socket_energy(prometheus::BuildGauge()
                          .Name("plugbridge_socket_energy_kwh")
                          .Help("A socket's energy counter in its newest committed reading")
                          .Register(*registry)) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(options.listen, 2);
    } catch (const std::exception& e) {
      throw std::runtime_error("metrics.listen " + options.listen + ": cannot listen: " + e.what());
    }
    if (exposer->GetListeningPorts().empty())
      throw std::runtime_error("metrics.listen " + options.listen + ": cannot listen");
    exposer->RegisterCollectable(registry);
  }

  Total& total(prometheus::Family<prometheus::Counter>& family, std::map<std::string, Total>& by,
               const std::string& label, const std::string& value) {
    auto it = by.find(value);
    if (it == by.end()) it = by.emplace(value, Total{&family.Add({{label, value}})}).first;
    return it->second;
  }

  struct UplinkSeries {
    prometheus::Gauge* connected;
    prometheus::Gauge* outbox;
    Total published, failed;
  };

  void update() {
    const gateway::Health h = gw.health();
    sessions_up.Set(static_cast<double>(h.sessions_up));
    roster_size.Set(static_cast<double>(h.roster_size));
    for (const auto& [reason, n] : h.handshakes_failed)
      total(handshakes_failed, handshakes_by_reason, "reason", reason).set(static_cast<double>(n));
    readings_received.set(static_cast<double>(h.readings_received));
    readings_committed.set(static_cast<double>(h.readings_committed));
    commits.set(static_cast<double>(h.commits));
    commits_failed.set(static_cast<double>(h.commits_failed));
    commit_seconds.set(h.commit_seconds);
    command_seconds.set(h.command_seconds);
    for (const auto& [code, n] : h.commands_by_code)
      total(commands, commands_by_code, "code", std::to_string(code)).set(static_cast<double>(n));
    records_waiting.Set(static_cast<double>(h.records_waiting));
    last_commit.Set(h.last_commit_ms > 0 ? static_cast<double>(h.last_commit_ms) / 1000 : kNaN);
    storage_failing.Set(h.storage_failure.empty() ? 0 : 1);
    database_bytes.Set(h.database_bytes >= 0 ? static_cast<double>(h.database_bytes) : kNaN);
    if (h.disk_written_bytes >= 0) disk_written.set(static_cast<double>(h.disk_written_bytes));
    clock_trusted.Set(h.clock_trusted ? 1 : 0);
    for (const auto& u : h.uplinks) {
      auto it = uplinks.find(u.name);
      if (it == uplinks.end()) {
        const prometheus::Labels l{{"uplink", u.name}};
        it = uplinks
                 .emplace(u.name, UplinkSeries{&uplink_connected.Add(l), &uplink_outbox.Add(l),
                                               Total{&uplink_published.Add(l)}, Total{&uplink_failed.Add(l)}})
                 .first;
      }
      it->second.connected->Set(u.connected ? 1 : 0);
      it->second.outbox->Set(static_cast<double>(u.outbox_depth));
      it->second.published.set(static_cast<double>(u.published));
      it->second.failed.set(static_cast<double>(u.failed));
    }
    update_sockets();
  }

  // The periodic refresh: short and on the loop, where the gateway's state lives. A cancelled wait
  // (stop, destruction) touches nothing.
  void schedule() {
    timer.expires_after(options.period);
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped) return;
      update();
      schedule();
    });
  }

  struct SocketSeries {
    std::string cid;
    prometheus::Gauge* power;
    prometheus::Gauge* energy;
  };

  // Per-socket gauges, the first max_socket_series sockets of the roster. The series follow the
  // roster's order; a reload (new generation) or any mismatch rebuilds them: series of sockets that
  // left are removed, new ones added.
  void update_sockets() {
    if (generation != gw.roster_generation()) rebuild_sockets();
    size_t i = 0;
    bool stale = false;
    gw.for_each_reading([&](const std::string& cid, const store::ReadingRow* r) {
      if (stale || i >= series.size()) return;
      SocketSeries& s = series[i++];
      if (s.cid != cid) {
        stale = true;
        return;
      }
      namespace proto = pbfw::proto;
      s.power->Set(r && proto::measured(r->flags, proto::kPowerValid) ? r->power_mw / 1000.0 : kNaN);
      s.energy->Set(r ? static_cast<double>(r->energy_mwh) / 1e6 : kNaN);
    });
    if (stale) {
      generation = ~gw.roster_generation();
      update_sockets();
    }
  }

  void rebuild_sockets() {
    generation = gw.roster_generation();
    std::unordered_map<std::string, SocketSeries> old;
    for (SocketSeries& s : series) old.emplace(s.cid, s);
    series.clear();
    size_t roster = 0;
    gw.for_each_reading([&](const std::string& cid, const store::ReadingRow*) {
      ++roster;
      if (series.size() >= options.max_socket_series) return;
      if (auto it = old.find(cid); it != old.end()) {
        series.push_back(it->second);
        old.erase(it);
        return;
      }
      const prometheus::Labels l{{"socket", cid}};
      series.push_back({cid, &socket_power.Add(l), &socket_energy.Add(l)});
    });
    for (auto& [cid, s] : old) {
      socket_power.Remove(s.power);
      socket_energy.Remove(s.energy);
    }
    if (roster > options.max_socket_series && !capped) {
      PB_LOG(Warning, "metrics") << "per-socket series only for the first " << options.max_socket_series
                                 << " of the " << roster << " sockets in the roster";
    }
    capped = roster > options.max_socket_series;
  }

  const gateway::Gateway& gw;
  Options options;
  boost::asio::steady_timer timer;
  bool stopped = false;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Gauge& sessions_up;
  prometheus::Gauge& roster_size;
  prometheus::Family<prometheus::Counter>& handshakes_failed;
  std::map<std::string, Total> handshakes_by_reason;
  Total readings_received, readings_committed, commits, commits_failed;
  FollowedHistogram commit_seconds, command_seconds;
  prometheus::Family<prometheus::Counter>& commands;
  std::map<std::string, Total> commands_by_code;
  prometheus::Gauge& records_waiting;
  prometheus::Gauge& last_commit;
  prometheus::Gauge& storage_failing;
  prometheus::Gauge& database_bytes;
  Total disk_written;
  prometheus::Gauge& clock_trusted;
  prometheus::Family<prometheus::Gauge>& uplink_connected;
  prometheus::Family<prometheus::Gauge>& uplink_outbox;
  prometheus::Family<prometheus::Counter>& uplink_published;
  prometheus::Family<prometheus::Counter>& uplink_failed;
  std::map<std::string, UplinkSeries> uplinks;
  prometheus::Family<prometheus::Gauge>& socket_power;
  prometheus::Family<prometheus::Gauge>& socket_energy;
  std::vector<SocketSeries> series;
  uint64_t generation = ~uint64_t{0};
  bool capped = false;
  // Last: gone first, so no scrape runs while the metrics above go away.
  std::unique_ptr<prometheus::Exposer> exposer;
};

Exporter::Exporter(boost::asio::io_context& io, const gateway::Gateway& gw, Options options)
    : impl_(std::make_unique<Impl>(io, gw, std::move(options))) {
  PB_LOG(Info, "metrics") << "Prometheus metrics on http://"
                          << impl_->options.listen.substr(0, impl_->options.listen.rfind(':')) << ":"
                          << port() << "/metrics";
  impl_->update();
  impl_->schedule();
}

Exporter::~Exporter() {
  stop();
}

void Exporter::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->timer.cancel();
}

uint16_t Exporter::port() const {
  const auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<uint16_t>(ports.front());
}

void Exporter::update() {
  impl_->update();
}

size_t Exporter::socket_series() const {
  return impl_->series.size();
}

}  // namespace pb::metrics
