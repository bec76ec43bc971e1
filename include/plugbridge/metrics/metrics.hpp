// Prometheus metrics of the daemon on an HTTP endpoint (config `metrics:`; docs/metrics.md).
//
// Threads: prometheus-cpp serves scrapes on civetweb's own threads, which must never touch gateway
// state. So the loop copies: a short periodic timer on the daemon's io_context takes
// Gateway::health() (no work per socket) and the roster's newest readings and stores them in the
// prometheus metric objects (atomics and mutex-guarded families); a scrape only reads those. A
// scrape therefore shows values at most one period old, and a busy loop delays the update, never
// the scrape nor the loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace pb::gateway {
class Gateway;
}

namespace pb::metrics {

struct Options {
  std::string listen = "127.0.0.1:9101";   // address:port ([v6]:port); port 0: any free port
  std::chrono::milliseconds period{1000};  // how often the loop refreshes the values
  // Sockets beyond this many (in roster order) get no per-socket series: each costs two series
  // in every scrape. Logged once per roster change that crosses it.
  size_t max_socket_series = 2000;
};

class Exporter {
 public:
  // Listens at once; throws std::runtime_error naming the address and the cause when it cannot.
  // The first update runs now; then every period on `io` until stop() or destruction. Call on the
  // loop; `gw` must outlive the Exporter (or its stop()).
  Exporter(boost::asio::io_context& io, const gateway::Gateway& gw, Options options);
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  uint16_t port() const;         // the bound port
  void update();                 // refresh every value now (on the loop)
  void stop();                   // no more updates; the listener closes at destruction
  size_t socket_series() const;  // sockets that have per-socket series

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb::metrics
