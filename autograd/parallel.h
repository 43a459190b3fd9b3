#pragma once
// Deterministic parallel reductions. Work is cut into chunks whose size does not depend on the
// thread count, chunk partials are computed in parallel and then combined in chunk order, so a
// result is bit-identical from run to run (exact resume needs that) on any number of threads.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace vdit {

// sum over i in [0, n) of term(i), accumulated in double.
template <class Term>
double deterministic_sum(int64_t n, Term term) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0.0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) s += term(i);
    partial[c] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// deterministic_row_sum cuts rows into at most kRowSumChunks chunks of at least
// kMinRowsPerChunk rows, a cut that depends on `rows` alone; its partials take
// kRowSumChunks x width doubles at most (4.6 MB at width 8,960), however many rows there are.
constexpr int64_t kRowSumChunks = 64;
constexpr int64_t kMinRowsPerChunk = 64;

inline int64_t row_sum_chunk_rows(int64_t rows) {
  return std::max(kMinRowsPerChunk, (rows + kRowSumChunks - 1) / kRowSumChunks);
}

// For each row r in [0, rows): row_fn(r, partial) adds that row's contribution into a
// `width`-wide double vector; the vectors are summed in row-chunk order and added into `dst`.
template <class RowFn>
void deterministic_row_sum(int64_t rows, int64_t width, float* dst, RowFn row_fn) {
  const int64_t chunk_rows = row_sum_chunk_rows(rows);
  const int64_t chunks = (rows + chunk_rows - 1) / chunk_rows;
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
#pragma omp parallel if (chunks > 1)
  {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t end = std::min(rows, (c + 1) * chunk_rows);
      for (int64_t r = c * chunk_rows; r < end; ++r) row_fn(r, partial.data() + c * width);
    }
#pragma omp for schedule(static)
    for (int64_t j = 0; j < width; ++j) {
      double s = 0.0;
      for (int64_t c = 0; c < chunks; ++c) s += partial[c * width + j];
      dst[j] += static_cast<float>(s);
    }
  }
}

}  // namespace vdit
