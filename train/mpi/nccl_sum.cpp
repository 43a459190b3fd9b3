#include "train/mpi/nccl_sum.h"

#include <mpi.h>
#include <nccl.h>

#include <algorithm>

#include "autograd/check.h"
#include "autograd/cuda/runtime.h"
#include "autograd/cuda_backend.h"

#define VDIT_NCCL_CHECK(call)                                                                                   \
  do {                                                                                                          \
    const ncclResult_t vdit_nccl_status_ = (call);                                                              \
    VDIT_CHECK(vdit_nccl_status_ == ncclSuccess, "NCCL error: " << ncclGetErrorString(vdit_nccl_status_) << " (" #call ")"); \
  } while (0)

namespace vdit {

NcclSum::NcclSum(int rank, int ranks, int device) : rank_(rank), ranks_(ranks), device_(device) {
  ncclUniqueId id;
  if (rank == 0) VDIT_NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  cuda::DeviceGuard guard(device);
  VDIT_NCCL_CHECK(ncclCommInitRank(&comm_, ranks, id, rank));
}

NcclSum::~NcclSum() {
  if (comm_) ncclCommDestroy(comm_);
}

void NcclSum::sum(float* data, int64_t n, int device) {
  VDIT_CHECK(device == device_, "NCCL sums run on cuda:" << device_ << ", not on cuda:" << device);
  // Pieces of equal size (the last padded), as ncclAllGather needs.
  const int64_t piece = (n + ranks_ - 1) / ranks_;
  auto count = [&](int p) { return std::clamp<int64_t>(n - p * piece, 0, piece); };
  if (piece * ranks_ > capacity_) {
    capacity_ = piece * ranks_;
    received_ = cuda_backend().allocate(capacity_ * sizeof(float), device);
    gathered_ = cuda_backend().allocate(capacity_ * sizeof(float), device);
  }
  auto* received = static_cast<float*>(received_.get());
  auto* gathered = static_cast<float*>(gathered_.get());
  cuda::DeviceGuard guard(device);
  cudaStream_t stream = cuda::stream(device);
  // Piece p of every rank to rank p (grouped sends and receives: an all-to-all).
  VDIT_NCCL_CHECK(ncclGroupStart());
  for (int p = 0; p < ranks_; ++p) {
    VDIT_NCCL_CHECK(ncclSend(data + p * piece, count(p), ncclFloat32, p, comm_, stream));
    VDIT_NCCL_CHECK(ncclRecv(received + p * piece, count(rank_), ncclFloat32, p, comm_, stream));
  }
  VDIT_NCCL_CHECK(ncclGroupEnd());
  // Rank order: rank 0's piece, plus rank 1's, ... (the kernels run on the same stream).
  for (int p = 1; p < ranks_; ++p)
    if (count(rank_) > 0) cuda_backend().accumulate(received, received + p * piece, count(rank_), 1.0f, device);
  VDIT_NCCL_CHECK(ncclAllGather(received, gathered, piece, ncclFloat32, comm_, stream));
  cuda_backend().copy(data, Device::cuda(device), gathered, Device::cuda(device), n * sizeof(float));
}

}  // namespace vdit
