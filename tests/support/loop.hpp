// Driving a boost::asio::io_context from a test, with deadlines instead of sleeps.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <thread>

namespace pb::test {

// Runs the loop until cond() holds or the deadline passes; returns cond().
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& cond,
                      std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!cond() && std::chrono::steady_clock::now() < end) {
    io.restart();
    if (io.run_for(std::chrono::milliseconds(5)) == 0) std::this_thread::yield();
  }
  return cond();
}

// Runs what is ready on the loop now (posted handlers), no timers waited for.
inline void run_ready(boost::asio::io_context& io) {
  io.restart();
  io.poll();
}

// Runs the loop, timers included, for `d`: for checking that something does not happen meanwhile.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

}  // namespace pb::test
