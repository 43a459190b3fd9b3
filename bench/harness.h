#pragma once
// vditkit-bench's small harness: timing by repeated calls (median of runs), peak-memory
// measurement through the kernel's high-water mark, and `name: value` reporting.
#include <functional>
#include <string>
#include <vector>

namespace vdit::bench {

// Median seconds per call of `fn` over at least `min_runs` runs and `min_seconds` in total,
// after one warm-up call.
double seconds_per_call(const std::function<void()>& fn, int min_runs = 3, double min_seconds = 1.0);

// Resets the process's peak resident set (VmHWM) to its current size (Linux clear_refs).
void reset_peak_rss();
double peak_rss_mib();
double current_rss_mib();

// Runs bench/SCRIPT (with ARGS) under Debian's python3 at `threads` OpenMP threads and returns
// the numbers it prints on stdout; empty when it could not run (e.g. python3-torch missing).
// The child inherits OPENBLAS_CORETYPE and gets the directory of the OpenBLAS we loaded first on
// LD_LIBRARY_PATH, so PyTorch's BLAS is the same build running the same kernel as ours.
std::vector<double> python_figures(const std::string& script, const std::string& args, int threads);

// The machine and libraries every figure depends on, as `name: value` lines: OpenMP threads,
// CPU model, ISA (AVX2, AVX-512, AVX512-BF16, AMX-BF16), the OpenBLAS build and core, and the
// path bf16 products take.
void report_machine();

// Prints "name: value" on one line, flushed at once (a reader may follow the run live).
void report(const std::string& name, double value);
void report(const std::string& name, const std::string& value);

// A benchmark section; sections are selected by name on the command line.
struct Section {
  std::string name;
  std::string description;
  std::function<void()> run;
};
std::vector<Section>& sections();
struct Register {
  Register(std::string name, std::string description, std::function<void()> run);
};

}  // namespace vdit::bench
