#include "train/mpi/mpi_group.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "autograd/check.h"
#include "autograd/cuda_backend.h"
#ifdef VDITKIT_NCCL
#include "train/mpi/nccl_sum.h"
#endif

namespace vdit {

namespace {

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

// MPI calls keep MPI's default handler, MPI_ERRORS_ARE_FATAL: a failed call (a peer that died
// included) prints MPI's own message and stops every rank, which is what a caller here would
// do with an error code.
class MpiGroup final : public DataParallel {
 public:
  MpiGroup() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
  }
  ~MpiGroup() override {
#ifdef VDITKIT_NCCL
    nccl_.reset();
#endif
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  void sum(float* data, int64_t n) override { ordered_sum(data, n); }
  void sum(double* data, int64_t n) override { ordered_sum(data, n); }

  void sum_on_device(float* data, int64_t n, int device) override {
#ifdef VDITKIT_NCCL
    if (!nccl_) nccl_ = std::make_unique<NcclSum>(rank_, size_, device);
    nccl_->sum(data, n, device);
#else
    // Without NCCL the sum goes through the host: two copies of the trained parameters'
    // gradients per step, small beside a step of the model.
    std::vector<float> host(static_cast<size_t>(n));
    const size_t bytes = host.size() * sizeof(float);
    cuda_backend().copy(host.data(), Device::cpu(), data, Device::cuda(device), bytes);
    ordered_sum(host.data(), n);
    cuda_backend().copy(data, Device::cuda(device), host.data(), Device::cpu(), bytes);
#endif
  }

  void abort(const std::string& message) override {
    std::fprintf(stderr, "rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  // Segments bound the scratch buffer and keep MPI's int counts in range.
  static constexpr int64_t kSegment = int64_t{1} << 26;

  // Rank p owns piece p of each segment: every rank sends it its values of that piece
  // (MPI_Alltoallv, which only moves data), p adds them in rank order, and every rank gathers
  // every sum (MPI_Allgatherv). The traffic of a ring all-reduce, in a fixed order.
  template <class T>
  void ordered_sum(T* data, int64_t n) {
    std::vector<int> counts(size_), displacements(size_);
    for (int64_t offset = 0; offset < n; offset += kSegment) {
      const int64_t length = std::min(kSegment, n - offset);
      for (int p = 0; p < size_; ++p) {
        const BatchShare piece = batch_share(length, p, size_);
        counts[p] = static_cast<int>(piece.end - piece.begin);
        displacements[p] = static_cast<int>(piece.begin);
      }
      const int mine = counts[rank_];
      std::vector<T>& received = scratch(T{});
      received.resize(static_cast<size_t>(mine) * size_);
      std::vector<int> received_counts(size_, mine), received_displacements(size_);
      for (int p = 0; p < size_; ++p) received_displacements[p] = p * mine;
      T* segment = data + offset;
      MPI_Alltoallv(segment, counts.data(), displacements.data(), mpi_type<T>(), received.data(),
                    received_counts.data(), received_displacements.data(), mpi_type<T>(), MPI_COMM_WORLD);
      T* out = segment + displacements[rank_];
#pragma omp parallel for schedule(static) if (mine >= (1 << 15))
      for (int i = 0; i < mine; ++i) {
        T total = received[i];
        for (int p = 1; p < size_; ++p) total += received[static_cast<size_t>(p) * mine + i];
        out[i] = total;
      }
      MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, segment, counts.data(), displacements.data(), mpi_type<T>(),
                     MPI_COMM_WORLD);
    }
  }

  // Kept from step to step, so that the pages are not faulted in again at every sum.
  std::vector<float>& scratch(float) { return float_scratch_; }
  std::vector<double>& scratch(double) { return double_scratch_; }

  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::vector<float> float_scratch_;
  std::vector<double> double_scratch_;
#ifdef VDITKIT_NCCL
  std::unique_ptr<NcclSum> nccl_;
#endif
};

}  // namespace

std::unique_ptr<DataParallel> join_mpi_group(int ranks) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  VDIT_CHECK(!initialised, "MPI is already initialised in this process");
  // Only the main thread calls MPI; OpenMP threads compute between the calls.
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  auto group = std::make_unique<MpiGroup>();
  VDIT_CHECK(group->size() == ranks, "the launcher announced " << ranks << " ranks but MPI's world has "
                                                               << group->size());
  return group;
}

}  // namespace vdit
