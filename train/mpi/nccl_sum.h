#pragma once
// Sums of float32 buffers on GPUs across the MPI world's ranks through NCCL, one GPU per rank;
// built only with CUDA, NCCL and MPI (CMakeLists.txt). The order of the additions is the one
// of the host sums (train/mpi/mpi_group.cpp): rank p adds piece p in rank order.
#include <cstdint>
#include <memory>

struct ncclComm;

namespace vdit {

class NcclSum {
 public:
  // Collective over MPI_COMM_WORLD: rank 0 makes NCCL's unique id, MPI broadcasts it, and
  // every rank joins the communicator on CUDA device `device`.
  NcclSum(int rank, int ranks, int device);
  ~NcclSum();
  NcclSum(const NcclSum&) = delete;
  NcclSum& operator=(const NcclSum&) = delete;

  // data[i] = the sum over ranks of data[i]; `data` is on `device`, ordered on its stream.
  void sum(float* data, int64_t n, int device);

 private:
  int rank_, ranks_, device_;
  ncclComm* comm_ = nullptr;
  std::shared_ptr<void> received_, gathered_;  // scratch on the device, grown as needed
  int64_t capacity_ = 0;                       // floats in each
};

}  // namespace vdit
