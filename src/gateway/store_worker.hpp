// Long SQLite work off the event loop: one thread with a connection of its own to the database
// file runs the jobs the loop hands it (the roll-ups, seconds at 10 000 sockets), in order, and
// posts each job's end back to the loop. The loop's state stays the loop's: a job gets only its
// own arguments and the worker's Store, and what it found goes back in its done handler.
// While a job runs, the loop writes nothing through its own connection (a write would wait for the
// job's write lock, on the loop thread): its writers ask busy() and go on in when_idle(). Reads
// are never held up (WAL).
#pragma once

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "plugbridge/store/store.hpp"

namespace pb::gateway {

class StoreWorker {
 public:
  using Job = std::function<void(store::Store&)>;
  // On the loop, after the job: null, or what it (or opening the connection) threw.
  using Done = std::function<void(std::exception_ptr)>;

  // The connection to `path` is opened on the worker's thread at the first job.
  StoreWorker(boost::asio::io_context& io, std::string path);
  // Interrupts the job running (it rolls back) and waits for the thread; queued jobs and done
  // handlers not run yet are dropped.
  ~StoreWorker();
  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  // Whether a Store on this path can have a worker (a second connection to the same database):
  // not for an in-memory database.
  static bool possible(const std::string& path);

  // Queues a job (loop thread).
  void run(Job job, Done done);
  // A job was handed over and its done handler has not run yet (loop view).
  bool busy() const { return busy_ > 0; }
  // f runs on the loop once no job is pending: at once if none is, else after the last done
  // handler (waiters in their order).
  void when_idle(std::function<void()> f);
  // Interrupts the job running and waits for the thread to end (loop thread; idempotent). Jobs
  // and done handlers not run yet are dropped; busy() is false after it.
  void stop();
  size_t jobs_done() const { return jobs_done_; }  // done handlers run
  // stop() has begun (any thread): a job between two steps of its own can end early on it.
  bool stopping() const;

 private:
  struct Item {
    Job job;
    Done done;
  };
  void main();
  void finished(const Done& done, std::exception_ptr error);

  boost::asio::io_context& io_;
  const std::string path_;
  // Loop side.
  size_t busy_ = 0;
  bool stopped_ = false;
  size_t jobs_done_ = 0;
  std::vector<std::function<void()>> idle_waiters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards posted done handlers
  // Shared with the thread.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  store::Store* running_on_ = nullptr;  // the worker's Store while a job runs (for interrupt)
  std::thread thread_;                  // last: started once the rest is ready
};

}  // namespace pb::gateway
