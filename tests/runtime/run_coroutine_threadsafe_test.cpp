#include <coring/run_coroutine_threadsafe.hpp>

#include <coring/sleep.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;

namespace {

// A loop running on its own thread until stop(); the thread id is recorded.
class loop_thread {
 public:
  loop_thread() {
    thread_ = std::thread([this] {
      coring::event_loop loop;
      loop_ = &loop;
      id_ = std::this_thread::get_id();
      started_.count_down();
      go_.wait();
      if (run_) loop.run_forever();
    });
    started_.wait();
  }
  ~loop_thread() { close(); }
  coring::event_loop& loop() { return *loop_; }
  std::thread::id id() const { return id_; }
  void start() {
    run_ = true;
    go_.count_down();
  }
  // Stops a running loop, or destroys one that never ran; joins.
  void close() {
    if (!thread_.joinable()) return;
    if (run_) {
      loop_->post([l = loop_] { l->stop(); });
    } else {
      go_.count_down();
    }
    thread_.join();
  }

 private:
  std::thread thread_;
  coring::event_loop* loop_ = nullptr;
  std::thread::id id_;
  std::latch started_{1};
  std::latch go_{1};
  std::atomic<bool> run_{false};
};

coring::task<std::thread::id> where_and_after(std::chrono::milliseconds d) {
  co_await coring::sleep_for(d);
  co_return std::this_thread::get_id();
}

coring::task<int> fails() {
  co_await coring::sleep_for(1ms);
  throw std::invalid_argument("bad input to the loop task");
}

coring::task<int> marks(std::atomic<bool>& ran) {
  ran = true;
  co_return 1;
}

}  // namespace

TEST_SUITE("runtime/post") {

TEST_CASE("run_coroutine_threadsafe runs the task on the loop's thread and gives its value" * doctest::timeout(10)) {
  loop_thread lt;
  lt.start();
  coring::future<std::thread::id> f = coring::run_coroutine_threadsafe(lt.loop(), where_and_after(5ms));
  CHECK(f.get() == lt.id());
  CHECK(lt.id() != std::this_thread::get_id());
}

TEST_CASE("run_coroutine_threadsafe hands the task's exception to the future" * doctest::timeout(10)) {
  loop_thread lt;
  lt.start();
  auto f = coring::run_coroutine_threadsafe(lt.loop(), fails());
  CHECK_THROWS_WITH_AS((void)f.get(), "bad input to the loop task", std::invalid_argument);
}

TEST_CASE("run_coroutine_threadsafe fails the future if the loop closes before the task ran" * doctest::timeout(10)) {
  std::atomic<bool> ran{false};
  coring::future<int> f;
  {
    loop_thread lt;  // never runs: the posted hand-over is dropped when the loop closes
    f = coring::run_coroutine_threadsafe(lt.loop(), marks(ran));
  }
  CHECK_THROWS_AS((void)f.get(), coring::error);
  CHECK_FALSE(ran);
}

TEST_CASE("a run_coroutine_threadsafe future cancelled before the task started never runs it" * doctest::timeout(10)) {
  std::atomic<bool> ran{false};
  loop_thread lt;
  auto f = coring::run_coroutine_threadsafe(lt.loop(), marks(ran));
  CHECK(f.cancel());
  lt.start();
  auto g = coring::run_coroutine_threadsafe(lt.loop(), where_and_after(1ms));
  (void)g.get();  // the loop has handled both hand-overs by now
  CHECK_FALSE(ran);
  CHECK_THROWS_AS((void)f.get(), coring::cancelled);
}

}  // TEST_SUITE
