#pragma once
// The MPI implementation of DataParallel (train/data_parallel.h); built only when CMake finds MPI.
#include <memory>

#include "train/data_parallel.h"

namespace vdit {

// Initialises MPI and returns the group of MPI_COMM_WORLD; an error when MPI's world does not
// have the `ranks` ranks the launcher's environment announced.
std::unique_ptr<DataParallel> join_mpi_group(int ranks);

}  // namespace vdit
