// SIGTERM and SIGUSR1 (what Slurm sends before preemption, and what `kill` sends by
// default) ask the training loop to stop: it checkpoints at the next step boundary and
// exits 0. A second signal means "now": the process exits at once with 128 + signal.
//
// The signals are blocked in our threads and a watcher thread takes them with
// sigtimedwait, so no handler ever interrupts the training computation: in testing, runs
// whose main thread ran a handler mid-step crashed now and then with a corrupted heap
// inside the oneDNN gemm (6 of 66 runs; 0 of 66 with the watcher, 0 of 46 without a
// signal). Threads that libraries start before main() (a BLAS thread pool) do not have
// the signals blocked; the kernel may pick one of them, so a handler is installed too,
// and it runs only there, in an idle thread.
#pragma once

#include <atomic>
#include <csignal>
#include <thread>

namespace xcomp {

// Blocks SIGTERM and SIGUSR1 in the calling thread and in every thread it creates later.
// The xcomp binary calls it first thing for `train`, before MPI or OpenMP start threads.
void block_stop_signals();

class StopSignals {
 public:
  // Blocks the signals in the calling thread, installs the handler and starts the
  // watcher. The signals stay blocked in this thread afterwards.
  StopSignals();
  // Stops the watcher and puts the previous handlers back.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // True once a signal arrived since construction.
  bool requested() const;
  // The signal number that asked, 0 when none.
  int signal() const;

 private:
  void watch();

  std::atomic<bool> stopping_{false};
  struct sigaction previous_term_ = {}, previous_usr1_ = {};
  std::thread watcher_;
};

}  // namespace xcomp
