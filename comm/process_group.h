// Where this process stands in a job: its rank among all ranks, the world size, and its
// rank among the ranks of its own node (the local rank picks the GPU). MpiSession starts
// and ends MPI for the xcomp binary; without mpirun/srun the process is a world of one
// (an MPI singleton), so `xcomp train` runs the same way launched or not.
#pragma once

namespace xcomp {

struct ProcessPlacement {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // among the ranks sharing this node (MPI_Comm_split_type shared)
  int local_size = 1;
};

class MpiSession {
 public:
  // MPI_Init_thread (funneled: only the main thread calls MPI; the data loader's thread
  // never does). Finalizes in the destructor.
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  const ProcessPlacement& placement() const { return placement_; }

 private:
  ProcessPlacement placement_;
};

// Ends every rank of the job with `code` (MPI_Abort): one rank's error must not leave
// the others waiting in a collective forever.
[[noreturn]] void abort_job(int code);

// True between MPI_Init and MPI_Finalize (in this process).
bool mpi_is_running();

// Whether mpirun/srun started this process (Open MPI, PMIx/Slurm and MPICH's Hydra set
// environment variables for their ranks), as opposed to a plain start.
bool launched_by_mpi();

// This process's placement in MPI_COMM_WORLD; CHECKs that MPI is running. The first call
// is collective (every rank must make it; MpiSession does, at start); later ones are not.
ProcessPlacement mpi_world_placement();

}  // namespace xcomp
