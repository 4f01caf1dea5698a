#include "trainer/stop_signals.h"

#include <glog/logging.h>
#include <pthread.h>
#include <unistd.h>

#include <ctime>

namespace xcomp {

namespace {

// The first stop signal's number; process-wide, since signals are.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs a lock-free flag");

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

// Records a stop signal; the second one ends the process. Async-signal-safe.
void note_stop_signal(int signo) {
  int none = 0;
  if (!g_stop_signal.compare_exchange_strong(none, signo)) _exit(128 + signo);
}

void on_stop_signal(int signo) { note_stop_signal(signo); }

}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signal_set();
  const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  CHECK_EQ(rc, 0) << "pthread_sigmask";
}

StopSignals::StopSignals() {
  g_stop_signal = 0;
  block_stop_signals();
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, &previous_term_);
  sigaction(SIGUSR1, &action, &previous_usr1_);
  watcher_ = std::thread([this] { watch(); });
}

StopSignals::~StopSignals() {
  stopping_ = true;
  watcher_.join();
  sigaction(SIGTERM, &previous_term_, nullptr);
  sigaction(SIGUSR1, &previous_usr1_, nullptr);
}

bool StopSignals::requested() const { return g_stop_signal.load() != 0; }
int StopSignals::signal() const { return g_stop_signal.load(); }

void StopSignals::watch() {
  const sigset_t set = stop_signal_set();
  const timespec poll = {0, 100 * 1000 * 1000};  // how soon the destructor is noticed
  bool announced = false;
  while (!stopping_) {
    const int signo = sigtimedwait(&set, nullptr, &poll);
    if (signo > 0) note_stop_signal(signo);
    if (!announced && g_stop_signal.load() != 0) {
      LOG(WARNING) << "signal " << g_stop_signal.load() << ": stopping with a checkpoint after the current step "
                   << "(a second signal exits at once)";
      announced = true;
    }
  }
}

}  // namespace xcomp
