// Mochi-1 and CogVideoX-2b figures (issue 17): block 0 of each released model, every parameter
// trainable, one forward + backward of sum(visual u) + sum(text u') at 4,096 video tokens
// (4 x 32 x 32) with the full caption (Mochi 256 real rows, CogVideoX 226), ours against PyTorch
// (bench/torch_family_block.py: the float64 references of tests/reference/ in float32, same
// threads): time and peak memory (see ours()). With a GPU, again there: ours with float32
// weights and bf16 activations, PyTorch under bf16 autocast; PyTorch attends with its fused
// scaled_dot_product_attention wherever it has one (torch_family_block.py), on both devices;
// and once more at each family's released video size (see kFamilies). VDITKIT_FAMILIES_GRID="F H W"
// sets another grid for the 4,096-token runs (a CPU step of Mochi there takes about a minute on
// 2 cores).
#include <malloc.h>
#include <omp.h>

#include <cstdlib>
#include <functional>
#include <sstream>

#include "autograd/cuda_backend.h"
#include "autograd/host_allocator.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "bench/harness.h"
#include "layers/cogvideox_block.h"
#include "layers/family_layers.h"
#include "layers/mochi_block.h"

namespace vdit::bench {

namespace {

using Grid = std::array<int64_t, 3>;

// Block 0 and what it reads, ready to run: loss() records one forward and returns the scalar.
struct BlockCase {
  ParameterMap params;  // block 0's, trainable
  std::function<Tensor()> loss;
};

// Block 0's parameters (normal, std 1/sqrt(last extent), as the PyTorch side draws them) on `device`.
ParameterMap block_parameters(const std::vector<ParamSpec>& specs, Rng& rng, Device device) {
  ParameterMap params;
  for (const ParamSpec& spec : specs)
    if (spec.block == 0) {
      params[spec.name] = rng.normal_tensor(spec.shape, 1.0f / std::sqrt(static_cast<float>(spec.shape.back())))
                              .to(device);
      params[spec.name].set_requires_grad(true);
    }
  return params;
}

// An activation of `shape` on `device`: float32 on the CPU, bf16 on a GPU (its blocks' inputs).
Tensor activation(Rng& rng, const Shape& shape, Device device) {
  const Tensor t = rng.normal_tensor(shape);
  return device.is_cuda() ? t.to_bf16().to(device) : t.to(device);
}

// The two streams a block reads, [1, tokens, width] and [1, rows, text width], and the
// gradients their outputs get (loss(visual out, text out) = sum(visual u) + sum(text u')).
struct Streams {
  Tensor visual, text, u_visual, u_text;
  Streams(Rng& rng, int64_t tokens, int64_t width, int64_t rows, int64_t text_width, Device device)
      : visual(activation(rng, {1, tokens, width}, device)),
        text(activation(rng, {1, rows, text_width}, device)),
        u_visual(activation(rng, visual.shape(), device)),
        u_text(activation(rng, text.shape(), device)) {}
  Tensor loss(const Tensor& visual_out, const Tensor& text_out) const {
    return add(sum_all(mul(visual_out, u_visual)), sum_all(mul(text_out, u_text)));
  }
};

BlockCase mochi_case(const Grid& grid, Rng& rng, Device device) {
  const MochiConfig config = MochiConfig::mochi_1_preview();
  const int64_t tokens = grid[0] * grid[1] * grid[2], rows = config.max_sequence_length;
  BlockCase c{block_parameters(mochi_parameter_specs(config), rng, device), {}};
  const MochiBlock block = build_mochi_block(config, c.params, 0);
  const Streams streams(rng, tokens, config.dim(), rows, config.pooled_projection_dim, device);
  MochiBlockInputs inputs;  // as MochiModel::embed makes them for a caption without padding
  inputs.conditioning = silu(rng.normal_tensor({1, config.dim()}).to(device));
  const Tensor frequencies =
      rng.normal_tensor({3, config.num_attention_heads, config.attention_head_dim / 2}, 0.05f).to(device);
  inputs.rope = mochi_rope(frequencies, grid);
  c.loss = [=] {
    const TokenStreams out = block({streams.visual, streams.text}, inputs);
    return streams.loss(out.video, out.text);
  };
  return c;
}

BlockCase cogvideox_case(const Grid& grid, Rng& rng, Device device) {
  const CogVideoXConfig config = CogVideoXConfig::cogvideox_2b();
  const int64_t tokens = grid[0] * grid[1] * grid[2], rows = config.max_text_seq_length;
  BlockCase c{block_parameters(cogvideox_parameter_specs(config), rng, device), {}};
  const CogVideoXBlock block = build_cogvideox_block(config, c.params, 0);
  const Streams streams(rng, tokens, config.dim(), rows, config.dim(), device);
  const Tensor conditioning = silu(rng.normal_tensor({1, config.time_embed_dim}).to(device));
  c.loss = [=] {
    const TokenStreams out = block({streams.visual, streams.text}, conditioning);
    return streams.loss(out.video, out.text);
  };
  return c;
}

struct Family {
  const char* name;  // figure prefix and torch_family_block.py --family
  BlockCase (*make)(const Grid&, Rng&, Device);
  Grid released;  // the tokens of a video at the released size
};
// Mochi-1: 163 frames of 480x848 (5.4 s at 30 fps), its VAE 6x in time and 8x8 in space, patch
// 2: 28 x 30 x 53 = 44,520 tokens. CogVideoX-2b: 49 frames of 480x720, VAE 4x and 8x8, patch 2:
// 13 x 30 x 45 = 17,550 tokens.
const Family kFamilies[] = {{"mochi", mochi_case, {28, 30, 53}}, {"cogvideox", cogvideox_case, {13, 30, 45}}};

Grid token_grid() {
  const char* text = std::getenv("VDITKIT_FAMILIES_GRID");
  if (!text) return {4, 32, 32};
  Grid grid{};
  std::istringstream in(text);
  in >> grid[0] >> grid[1] >> grid[2];
  const auto positive = [](int64_t n) { return n > 0 && n <= (1 << 20); };
  const bool valid = in && (in >> std::ws).eof() && positive(grid[0]) && positive(grid[1]) && positive(grid[2]) &&
                     grid[0] * grid[1] * grid[2] <= (1 << 20);
  VDIT_CHECK(valid, "VDITKIT_FAMILIES_GRID must be three positive token counts \"F H W\" (at most 2^20 tokens), got \""
                        << text << "\"");
  return grid;
}

struct Ours {
  double seconds = 0, peak_mib = 0;
  double held_mib = -1;  // GPU: what the forward leaves for the backward (activations), above the start
};

// Our median seconds per step of `f`'s block, and the memory of the steps (MiB): on a GPU the
// allocator's peak during a step above what it held before it (activations, gradients,
// workspaces), and what it holds between the forward and the backward; on the CPU the resident
// set's peak above what the process held before the block existed (parameters and inputs
// included: the host allocator keeps freed blocks, so a step's own peak cannot be told apart),
// as the PyTorch side reports it.
Ours ours(const Family& f, const Grid& grid, Device device) {
  release_cached_host_blocks();  // an earlier case's kept blocks
  malloc_trim(0);
  const double cpu_base = current_rss_mib();
  reset_peak_rss();
  Rng rng(0);
  const BlockCase c = f.make(grid, rng, device);
  const auto zero = [&] {
    for (const auto& [key, p] : c.params) p.zero_grad();
  };
  const auto step = [&] {
    zero();
    c.loss().backward();
    if (device.is_cuda()) cuda_backend().synchronize(device.index);
  };
  const double seconds = seconds_per_call(step, 3, 0.0);
  if (!device.is_cuda()) return {seconds, peak_rss_mib() - cpu_base};
  zero();
  const auto mib = [](int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
  const int64_t before = cuda_backend().memory_stats(device.index).live;
  cuda_backend().reset_memory_peak(device.index);
  const Tensor loss = c.loss();
  cuda_backend().synchronize(device.index);
  const double held = mib(cuda_backend().memory_stats(device.index).live - before);
  loss.backward();
  cuda_backend().synchronize(device.index);
  return {seconds, mib(cuda_backend().memory_stats(device.index).peak - before), held};
}

// Every family's block on `device` at the grid `grid_of` gives it.
void run_device(Device device, const std::function<Grid(const Family&)>& grid_of) {
  for (const Family& f : kFamilies) {
    const Grid grid = grid_of(f);
    std::ostringstream args;
    args << "--grid " << grid[0] << " " << grid[1] << " " << grid[2] << (device.is_cuda() ? " --device cuda" : "");
    const std::string name = std::string(device.is_cuda() ? "gpu_" : "") + f.name + "_block_" +
                             std::to_string(grid[0] * grid[1] * grid[2]);
    // PyTorch first: on a GPU, before our allocator holds any memory.
    const std::string torch_args = "--family " + std::string(f.name) + " " + args.str();
    const std::vector<double> theirs = python_figures("torch_family_block.py", torch_args, omp_get_max_threads());
    const auto [seconds, peak, held] = ours(f, grid, device);
    report(name + "_fwd_bwd_s", seconds);
    report(name + "_peak_mib", peak);
    if (held >= 0) report(name + "_forward_held_mib", held);
    if (theirs.size() < 2) {
      report("torch_" + name, "unavailable (no PyTorch, or it failed: run bench/torch_family_block.py by hand)");
      continue;
    }
    report("torch_" + name + "_fwd_bwd_s", theirs[0]);
    report("torch_" + name + "_peak_mib", theirs[1]);
    report(name + "_speedup", theirs[0] / seconds);
    report(name + "_peak_vs_torch", peak / theirs[1]);
    if (theirs.size() > 2) report("torch_" + name + "_forward_held_mib", theirs[2]);
  }
}

void run_families() {
  const Grid grid = token_grid();
  const auto fixed = [&](const Family&) { return grid; };
  run_device(Device::cpu(), fixed);
  if (!cuda_available()) {
    report("gpu_families", "skipped: no CUDA device visible (or vditkit built without -DVDITKIT_CUDA=ON)");
    return;
  }
  run_device(Device::cuda(0), fixed);
  run_device(Device::cuda(0), [](const Family& f) { return f.released; });
}

Register families_section("families",
                          "Mochi-1 and CogVideoX-2b block forward+backward at 4,096 tokens, ours vs PyTorch (CPU, GPU), "
                          "and at their released video sizes (GPU)",
                          run_families);

}  // namespace

}  // namespace vdit::bench
