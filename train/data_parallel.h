#pragma once
// Data-parallel training's view of the other processes: who this rank is, and sums across
// ranks. The trainer knows only this interface; `join_data_parallel` picks the implementation:
// one process, or MPI (train/mpi/, built when CMake finds MPI) when a launcher such as
// `mpirun -np N` started N > 1 ranks, with NCCL for buffers on GPUs where it was built.
//
// Every sum is deterministic and the same bits on every rank: each element is added in rank
// order (rank 0's value, plus rank 1's, ...) by one rank and sent to the others, whatever
// algorithms the MPI library picks. (MPI only recommends, and does not promise, that a
// reduction's result is independent of how its algorithm is chosen; README "Data-parallel".)
#include <cstdint>
#include <memory>
#include <string>

namespace vdit {

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks of its machine: its GPU is cuda:local_rank.
  virtual int local_rank() const = 0;

  // data[i] = the sum over ranks of data[i], for float32 buffers on the host.
  virtual void sum(float* data, int64_t n) = 0;
  // The same for a few doubles (losses, counts).
  virtual void sum(double* data, int64_t n) = 0;
  // The same for float32 buffers on CUDA device `device` (NCCL).
  virtual void sum_on_device(float* data, int64_t n, int device) = 0;

  // Prints "rank R of N: MESSAGE" on stderr and stops every rank at once (MPI_Abort), for an
  // error on one rank while the others may wait for it in a sum. Returns only for one process.
  virtual void abort(const std::string& message) = 0;
};

// The group of one process (sums are the identity).
DataParallel& single_process();

// The number of ranks the launcher says it started (OMPI_COMM_WORLD_SIZE, PMI_SIZE); 1 when
// the process was not started by an MPI launcher.
int launched_ranks();

// The group this process belongs to: MPI's when launched_ranks() > 1 (initialising MPI), else
// single_process(). An error saying how to build with MPI when it is needed and this build has
// none.
std::unique_ptr<DataParallel> join_data_parallel();

// The samples [begin, end) of a global batch of `batch` samples that rank `rank` of `ranks`
// computes: contiguous, in rank order, sizes differing by at most one (rank r gets
// floor(r B / N) to floor((r + 1) B / N)). A rank may get none when batch < ranks.
struct BatchShare {
  int64_t begin, end;
};
BatchShare batch_share(int64_t batch, int rank, int ranks);

}  // namespace vdit
