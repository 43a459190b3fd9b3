#pragma once
// `vditkit study NAME ...`: the papers' experiments (issue 16), one subcommand per study. Each
// study lives in its own tools/study_NAME.cpp and has one row in the table of tools/study.cpp.
#include "tools/command.h"

namespace vdit::cli {

int run_study_transfer(int argc, char** argv);  // tools/study_transfer.cpp
int run_study_perturb(int argc, char** argv);   // tools/study_perturb.cpp
int run_study_sparsity(int argc, char** argv);  // tools/study_sparsity.cpp

}  // namespace vdit::cli
