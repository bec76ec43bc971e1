#include "store_worker.hpp"

#include <boost/asio/post.hpp>
#include <optional>

namespace pb::gateway {

StoreWorker::StoreWorker(boost::asio::io_context& io, std::string path)
    : io_(io), path_(std::move(path)), thread_([this] { main(); }) {}

StoreWorker::~StoreWorker() {
  stop();
}

bool StoreWorker::possible(const std::string& path) {
  return !path.empty() && path != ":memory:" && path.rfind("file::memory:", 0) != 0;
}

void StoreWorker::run(Job job, Done done) {
  if (stopped_) return;
  ++busy_;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(Item{std::move(job), std::move(done)});
  }
  wake_.notify_one();
}

void StoreWorker::when_idle(std::function<void()> f) {
  if (busy_ == 0) {
    boost::asio::post(io_, [f = std::move(f), alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) f();
    });
    return;
  }
  idle_waiters_.push_back(std::move(f));
}

void StoreWorker::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
    if (running_on_) running_on_->interrupt();
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  alive_ = std::make_shared<bool>(true);  // done handlers posted already are dropped
  busy_ = 0;
  idle_waiters_.clear();
}

bool StoreWorker::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

void StoreWorker::main() {
  std::optional<store::Store> store;  // opened, used and closed on this thread only
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::exception_ptr error;
    try {
      if (!store) store.emplace(path_);
      lock.lock();
      if (stopping_) return;
      running_on_ = &*store;
      lock.unlock();
      item.job(*store);
    } catch (...) {
      error = std::current_exception();
    }
    if (!lock.owns_lock()) lock.lock();
    running_on_ = nullptr;
    if (stopping_) return;
    boost::asio::post(io_, [this, done = std::move(item.done), error, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) finished(done, error);
    });
  }
}

void StoreWorker::finished(const Done& done, std::exception_ptr error) {
  --busy_;
  ++jobs_done_;
  if (done) done(error);
  // A waiter may hand over a job: the others then wait for that one too.
  while (busy_ == 0 && !idle_waiters_.empty()) {
    auto f = std::move(idle_waiters_.front());
    idle_waiters_.erase(idle_waiters_.begin());
    f();
  }
}

}  // namespace pb::gateway
