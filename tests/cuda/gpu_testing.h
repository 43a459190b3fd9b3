#pragma once
// GPU tests are built only with CUDA and skip, saying why, where no device is visible, so the
// suite stays green on machines without a GPU.
#include <gtest/gtest.h>

#include "autograd/cuda_backend.h"

#define VDIT_REQUIRE_GPU()                                                        \
  do {                                                                            \
    if (!::vdit::cuda_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"; \
  } while (0)
