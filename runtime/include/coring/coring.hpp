#pragma once
// The whole runtime in one include, for applications and examples. coring's
// own headers never include this; include what you use there.

#include <coring/as_completed.hpp>
#include <coring/channel.hpp>
#include <coring/current_task.hpp>
#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/event_loop.hpp>
#include <coring/file.hpp>
#include <coring/future.hpp>
#include <coring/future_as_completed.hpp>
#include <coring/gather.hpp>
#include <coring/generator.hpp>
#include <coring/io.hpp>
#include <coring/loop_thread.hpp>
#include <coring/mutex.hpp>
#include <coring/outcome.hpp>
#include <coring/process_pool.hpp>
#include <coring/queue.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/serialize.hpp>
#include <coring/semaphore.hpp>
#include <coring/shield.hpp>
#include <coring/signal.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/subprocess.hpp>
#include <coring/task.hpp>
#include <coring/task_group.hpp>
#include <coring/thread_pool.hpp>
#include <coring/timeout.hpp>
#include <coring/timer_handle.hpp>
#include <coring/wait_for.hpp>
#include <coring/when_any.hpp>
