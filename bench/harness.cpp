#include "bench/harness.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <filesystem>
#include <sstream>

#include "autograd/blas.h"
#include "autograd/cpu_features.h"
#include "autograd/gemm_bf16.h"

namespace vdit::bench {

double seconds_per_call(const std::function<void()>& fn, int min_runs, double min_seconds) {
  using Clock = std::chrono::steady_clock;
  fn();  // warm-up: page faults, thread start-up, BLAS buffers
  std::vector<double> times;
  double total = 0.0;
  while (static_cast<int>(times.size()) < min_runs || total < min_seconds) {
    auto start = Clock::now();
    fn();
    double t = std::chrono::duration<double>(Clock::now() - start).count();
    times.push_back(t);
    total += t;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

namespace {

double status_field_mib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream is(line.substr(field.size() + 1));
      double kib = 0;
      is >> kib;
      return kib / 1024.0;
    }
  return -1.0;
}

}  // namespace

void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

// The kernel folds the current RSS into VmHWM lazily (on unmap and exit), so a peak read
// while the memory is still held must also look at VmRSS.
double peak_rss_mib() { return std::max(status_field_mib("VmHWM"), status_field_mib("VmRSS")); }
double current_rss_mib() { return status_field_mib("VmRSS"); }

// The PyTorch side runs Debian's python3-torch over the OpenBLAS we loaded (same GEMM kernel),
// or, where VDITKIT_TORCH_PYTHON names another interpreter (a PyTorch build of its own, such as
// 2.11 with oneDNN/AMX on a server), that one, with none of our library paths: they would
// shadow the libraries it ships.
std::vector<double> python_figures(const std::string& script, const std::string& args, int threads) {
  const char* own_torch = std::getenv("VDITKIT_TORCH_PYTHON");
  const std::filesystem::path blas_dir = std::filesystem::path(blas::library_path()).parent_path();
  const std::string library_path =
      own_torch ? "env -u LD_LIBRARY_PATH "
      : blas_dir.is_absolute() ? "LD_LIBRARY_PATH=" + blas_dir.string() + "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "
                               : "";
  const std::string python = own_torch ? own_torch : VDITKIT_PYTHON;
  const std::string command = library_path + "OMP_NUM_THREADS=" + std::to_string(threads) + " " + python + " " +
                              VDITKIT_SOURCE_DIR + "/bench/" + script + " --threads " + std::to_string(threads) +
                              " " + args;
  std::vector<double> figures;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return figures;
  for (double value; std::fscanf(pipe, "%lf", &value) == 1;) figures.push_back(value);
  if (pclose(pipe) != 0) figures.clear();
  return figures;
}

void report(const std::string& name, double value) {
  std::printf("%s: %.4g\n", name.c_str(), value);
  std::fflush(stdout);
}

void report(const std::string& name, const std::string& value) {
  std::printf("%s: %s\n", name.c_str(), value.c_str());
  std::fflush(stdout);
}

void report_machine() {
  report("threads", omp_get_max_threads());
  report("cpu", cpu_features().model);
  report("isa", isa_summary(cpu_features()));
  report("openblas", blas::build());
  report("bf16_products", gemm::bf16_path_name(gemm::bf16_path()));
}

std::vector<Section>& sections() {
  static std::vector<Section> all;
  return all;
}

Register::Register(std::string name, std::string description, std::function<void()> run) {
  sections().push_back({std::move(name), std::move(description), std::move(run)});
}

}  // namespace vdit::bench
