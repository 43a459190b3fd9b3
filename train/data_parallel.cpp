#include "train/data_parallel.h"

#include <cstdlib>
#include <string>

#include "autograd/check.h"
#ifdef VDITKIT_MPI
#include "train/mpi/mpi_group.h"
#endif

namespace vdit {

namespace {

class SingleProcess final : public DataParallel {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void sum(float*, int64_t) override {}
  void sum(double*, int64_t) override {}
  void sum_on_device(float*, int64_t, int) override {}
  void abort(const std::string&) override {}  // the caller reports the error as it always does
};

}  // namespace

DataParallel& single_process() {
  static SingleProcess group;
  return group;
}

int launched_ranks() {
  // Open MPI's mpirun, then the PMI variable that MPICH's and Intel MPI's launchers set.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* value = std::getenv(name)) {
      char* end = nullptr;
      const long ranks = std::strtol(value, &end, 10);
      VDIT_CHECK(end != value && *end == '\0' && ranks >= 1 && ranks <= 1 << 20,
                 "environment variable " << name << "='" << value << "' is not a rank count");
      return static_cast<int>(ranks);
    }
  return 1;
}

std::unique_ptr<DataParallel> join_data_parallel() {
  const int ranks = launched_ranks();
  if (ranks == 1) return std::make_unique<SingleProcess>();
#ifdef VDITKIT_MPI
  return join_mpi_group(ranks);
#else
  VDIT_FAIL("started as one of " << ranks << " ranks, but this vditkit was built without MPI: install OpenMPI "
            "(libopenmpi-dev openmpi-bin, as scripts/install-deps.sh does) and rebuild, or run one process");
#endif
}

BatchShare batch_share(int64_t batch, int rank, int ranks) {
  VDIT_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "rank " << rank << " of " << ranks);
  return {batch * rank / ranks, batch * (rank + 1) / ranks};
}

}  // namespace vdit
