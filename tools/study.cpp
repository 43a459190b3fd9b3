// vditkit study: dispatches to the study named by the first argument, as main() dispatches to
// commands; a study parses its own options (argv[0] is its name).
#include <cstring>
#include <iostream>

#include "tools/study.h"

namespace vdit::cli {
namespace {

const Command kStudies[] = {
    {"transfer", "attention-map transfer editing: every block's self-attention from a source prompt, alone and all together",
     run_study_transfer},
    {"perturb", "self-attention replaced by identity or uniform maps per block, beside each block's entropy",
     run_study_perturb},
    {"sparsity", "per-block sparsification curves: how far the velocity moves when queries keep fewer keys",
     run_study_sparsity},
};

void print_studies() {
  std::cout << "usage: vditkit study <study> [options]   (vditkit study <study> --help for its options)\n\nstudies:\n";
  for (const Command& s : kStudies) std::cout << "  " << s.name << std::string(12 - std::min<size_t>(11, s.name.size()), ' ') << s.summary << "\n";
}

int run_study(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_studies();
    return argc < 2 ? 2 : 0;
  }
  for (const Command& s : kStudies)
    if (s.name == argv[1]) return s.run(argc - 1, argv + 1);
  std::string names;
  for (const Command& s : kStudies) names += std::string(names.empty() ? "" : ", ") + s.name;
  throw UsageError("unknown study '" + std::string(argv[1]) + "' (studies: " + names + ")");
}

const RegisterCommand reg("study", "the papers' experiments on attention (vditkit study --help lists them)", run_study);

}  // namespace
}  // namespace vdit::cli
