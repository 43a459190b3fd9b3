#include "diagnostics/sparsity_study.h"

#include <algorithm>
#include <cmath>

#include "autograd/check.h"
#include "autograd/tape.h"
#include "diagnostics/probe_set.h"
#include "diagnostics/sparse_attention.h"

namespace vdit {

namespace {

// Sums of squares of one error: sum (masked - dense)^2 and sum dense^2.
struct ErrorSums {
  double diff = 0.0, norm = 0.0;
  void add(const Tensor& masked, const Tensor& dense) {
    diff += sum_squared_difference(masked, dense);
    norm += sum_squared_difference(dense);
  }
  double relative() const { return std::sqrt(diff / std::max(norm, 1e-30)); }
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace

SparsityStudy run_sparsity_study(const Model& model, const LatentDataset& data, const SparsityStudyOptions& options,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  NoGradScope no_grad;
  VDIT_CHECK(!options.keep.empty(), "study sparsity: no keep level given");
  for (double keep : options.keep)
    VDIT_CHECK(keep > 0.0 && keep <= 1.0, "study sparsity: keep level " << keep << " is not in (0, 1]");
  VDIT_CHECK(!options.sigmas.empty(), "study sparsity: no noise level given");
  const ModelFacts facts = model.facts();
  const ProbeSet probe = probe_set(facts, data, options.probe_samples, "study sparsity");
  const int B = facts.num_blocks;
  const int64_t L = static_cast<int64_t>(options.keep.size()), T = static_cast<int64_t>(options.sigmas.size());

  std::vector<ErrorSums> velocity(B * L), output(B * L), all_blocks(L);
  const int64_t total = T * probe.samples * L * (B + 1);
  int64_t done = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < probe.samples; ++s) {
      const std::unique_ptr<Model::Stage> stage = embed_probe(model, data.read(s), s, options.sigmas[t], options.noise_seed);
      std::vector<TokenStreams> x{std::move(stage->streams)};  // x[b]: block b's dense input; x[B] the head's
      for (int b = 0; b < B; ++b) x.push_back(model.block_stage(b, x[b], *stage, nullptr));
      const Tensor v = model.head_stage(x[B], *stage);
      for (int64_t l = 0; l < L; ++l) {
        SparseProbe sparse(main_attention(facts), options.keep[l]);
        for (int b = 0; b < B; ++b) {
          TokenStreams y = model.block_stage(b, x[b], *stage, &sparse);
          output[b * L + l].add(y.video, x[b + 1].video);
          for (int later = b + 1; later < B; ++later) y = model.block_stage(later, y, *stage, nullptr);
          velocity[b * L + l].add(model.head_stage(y, *stage), v);
          if (progress) progress(++done, total);
        }
        TokenStreams y = x[0];
        for (int b = 0; b < B; ++b) y = model.block_stage(b, y, *stage, &sparse);
        all_blocks[l].add(model.head_stage(y, *stage), v);
        if (progress) progress(++done, total);
      }
    }

  SparsityStudy study;
  study.keep = options.keep;
  study.sigmas = options.sigmas;
  study.blocks = B;
  study.probe_samples = probe.samples;
  for (const ErrorSums& e : velocity) study.velocity_error.push_back(e.relative());
  for (const ErrorSums& e : output) study.block_output_error.push_back(e.relative());
  for (const ErrorSums& e : all_blocks) study.all_blocks_velocity_error.push_back(e.relative());
  return study;
}

std::vector<SensitiveBlock> sensitive_blocks(const SparsityStudy& study, const SensitivityRule& rule) {
  std::vector<SensitiveBlock> sensitive;
  if (study.blocks < 2) return sensitive;
  for (int64_t b = 0; b < study.blocks; ++b) {
    SensitiveBlock block{b, {}};
    for (int64_t l = 0; l < study.levels(); ++l) {
      std::vector<double> others;
      for (int64_t o = 0; o < study.blocks; ++o)
        if (o != b) others.push_back(study.velocity_error[o * study.levels() + l]);
      const double m = median(others), error = study.velocity_error[b * study.levels() + l];
      if (error > rule.ratio * m && error > m + rule.floor) block.levels.push_back(l);
    }
    if (!block.levels.empty()) sensitive.push_back(block);
  }
  return sensitive;
}

}  // namespace vdit
