// GPU figures (issue 13) at the Wan2.1-1.3B shapes, 4,096 and 32,760 tokens: one block forward +
// backward with all its parameters trainable, the 30-block forward without gradients (both with
// the attention VDITKIT_CUDA_ATTENTION picks), attention forward + backward alone (our kernel, and
// cuDNN's where built in), the largest GEMM of a block; each beside PyTorch's (bench/torch_gpu.py,
// bf16 and scaled_dot_product_attention) from the same run, as the ratio PyTorch time / ours.
// PyTorch runs first, in a child process, before this process's allocator holds any GPU memory.
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/cuda_backend.h"
#include "autograd/ops.h"
#include "autograd/random.h"
#include "bench/gpu_training.h"
#include "bench/harness.h"
#include "layers/init.h"
#include "layers/vdit.h"
#if VDITKIT_CUDA
#include <nvtx3/nvToolsExt.h>

#include "autograd/cuda/attention_cudnn.h"
#include "autograd/cuda/cublaslt.h"
#endif

namespace vdit::bench {

namespace {

const Device kGpu = Device::cuda(0);

struct Shapes {
  std::array<int64_t, 3> grid;  // tokens per (frame, height, width)
  int64_t tokens() const { return grid[0] * grid[1] * grid[2]; }
};
// 4,096 tokens, and 480x832 at 81 frames: 21 x 30 x 52 = 32,760 latent tokens after the 1x2x2 patch.
const std::vector<Shapes> kShapes = {{{4, 32, 32}}, {{21, 30, 52}}};

struct Figures {
  double block_ms = 0, forward_ms = 0, attention_ms = 0, gemm_ms = 0;
  double cudnn_attention_ms = 0;  // ours only; 0 where cuDNN is not built in or cannot run the shape
};

double attention_tflop(int64_t tokens, const VDiTConfig& c) {  // forward 4 B H N^2 hd, backward 2.5x
  return 3.5 * 4.0 * c.num_heads * static_cast<double>(tokens) * tokens * c.head_dim() / 1e12;
}
double gemm_tflop(int64_t tokens, const VDiTConfig& c) { return 2.0 * tokens * c.ffn_dim * c.dim / 1e12; }

// Milliseconds per call, the work finished on the device before the clock stops.
double gpu_ms(const std::function<void()>& fn, int runs) {
  return 1e3 * seconds_per_call([&] {
    fn();
    cuda_backend().synchronize(0);
  }, runs, 0.5);
}

Tensor on_gpu(const Tensor& t, DType dtype) { return (dtype == DType::BF16 ? t.to_bf16() : t).to(kGpu); }

// Block 0's parameters on the GPU: trainable (fp32, requiring gradients) or frozen (bf16).
ParameterMap block_parameters(const VDiTConfig& config, Rng& rng, bool trainable) {
  ParameterMap params;
  for (const ParamSpec& spec : wan_block_parameter_specs(config, 0)) {
    const Tensor p = init_wan_parameter(spec.name, spec.shape, rng);
    params[spec.name] = trainable ? p.to(kGpu) : p.to_bf16().to(kGpu);
    if (trainable) params[spec.name].set_requires_grad(true);
  }
  return params;
}

// A block's inputs at these shapes, and the gradient its output gets (the upstream of sum(y u)).
struct BlockInputs {
  Tensor x, e0, context, upstream;
  RopeTables rope;
  BlockInputs(const VDiTConfig& config, const Shapes& s, Rng& rng) {
    const int64_t d = config.dim;
    x = on_gpu(rng.normal_tensor({1, s.tokens(), d}), DType::BF16);
    e0 = on_gpu(rng.normal_tensor({1, 6, d}, 0.1f), DType::F32);
    context = on_gpu(rng.normal_tensor({1, config.text_len, d}), DType::BF16);
    upstream = on_gpu(rng.normal_tensor({1, s.tokens(), d}), DType::BF16);
    const RopeTables host = make_rope_tables(s.grid, config.head_dim());
    rope = {host.cos.to(kGpu), host.sin.to(kGpu)};
  }
  Tensor run(const WanBlock& block) const { return block(x, e0, context, rope); }
};

double block_forward_backward_ms(const VDiTConfig& config, const Shapes& s, Rng& rng) {
  ParameterMap params = block_parameters(config, rng, true);
  const WanBlock block = build_wan_block(config, params, 0);
  const BlockInputs in(config, s, rng);
  auto step = [&] {
    for (auto& [key, p] : params) p.zero_grad();
    sum_all(mul(in.run(block), in.upstream)).backward();
  };
  const double ms = gpu_ms(step, 5);
#if VDITKIT_CUDA
  // One more step inside an NVTX range, for scripts/profile-gpu.sh to profile alone.
  const std::string range = "profile_block_" + std::to_string(s.tokens());
  nvtxRangePushA(range.c_str());
  step();
  cuda_backend().synchronize(0);
  nvtxRangePop();
#endif
  return ms;
}

// What one block keeps for its backward pass (MiB, its output not counted): frozen (bf16
// weights, in the graph for its input's gradient only, as blocks 21-29 of the retraining step)
// and trainable (fp32 weights); the most the allocator held above the block's input during its
// backward (everything kept, the output, gradients and workspaces); and the frozen block's
// forward + backward time, most of a retraining step's backward half.
void report_block_memory(const VDiTConfig& config, const Shapes& s, Rng& rng) {
  const std::string n = std::to_string(s.tokens());
  for (const bool trainable : {false, true}) {
    const WanBlock block = build_wan_block(config, block_parameters(config, rng, trainable), 0);
    BlockInputs in(config, s, rng);
    in.x.set_requires_grad(true);
    cuda_backend().synchronize(0);
    const int64_t before = cuda_backend().memory_stats(0).live;
    const Tensor y = in.run(block);
    const int64_t held = cuda_backend().memory_stats(0).live - before - y.storage_bytes();
    cuda_backend().reset_memory_peak(0);
    sum_all(mul(y, in.upstream)).backward();
    cuda_backend().synchronize(0);
    const int64_t peak = cuda_backend().memory_stats(0).peak - before;
    const std::string kind = trainable ? "trainable_" : "frozen_";
    report("gpu_block_held_mib_" + kind + n, static_cast<double>(held) / (1 << 20));
    report("gpu_block_backward_peak_mib_" + kind + n, static_cast<double>(peak) / (1 << 20));
    if (!trainable)
      report("gpu_frozen_block_fwd_bwd_ms_" + n, gpu_ms([&] {
        in.x.zero_grad();
        sum_all(mul(in.run(block), in.upstream)).backward();
      }, 5));
  }
}

double full_forward_ms(const VDiT& model, const VDiTConfig& config, const Shapes& s, Rng& rng) {
  const Tensor latents = on_gpu(rng.normal_tensor({1, config.in_dim, s.grid[0] * config.patch_size[0],
                                                   s.grid[1] * config.patch_size[1], s.grid[2] * config.patch_size[2]}),
                                DType::F32);
  const Tensor context = on_gpu(rng.normal_tensor({1, config.text_len, config.text_dim}), DType::F32);
  NoGradScope no_grad;
  return gpu_ms([&] { model.forward(latents, {500.0}, context); }, 3);
}

// Through the autograd op, as the model calls it, with VDITKIT_CUDA_ATTENTION=kernel (own or
// cudnn); the output's gradient is seeded directly. 0, reported, where that kernel cannot run.
double attention_ms(const VDiTConfig& config, const Shapes& s, Rng& rng, const std::string& kernel) {
  const char* before = std::getenv("VDITKIT_CUDA_ATTENTION");
  const std::string saved = before ? before : "";
  setenv("VDITKIT_CUDA_ATTENTION", kernel.c_str(), 1);
  const Shape shape = {1, s.tokens(), config.num_heads, config.head_dim()};
  Tensor q = on_gpu(rng.normal_tensor(shape), DType::BF16), k = on_gpu(rng.normal_tensor(shape), DType::BF16),
         v = on_gpu(rng.normal_tensor(shape), DType::BF16);
  for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
  const Tensor dout = on_gpu(rng.normal_tensor(shape), DType::F32);
  double ms = 0;
  try {
    ms = gpu_ms([&] {
      for (Tensor* t : {&q, &k, &v}) t->zero_grad();
      Tensor out = attention(q, k, v);
      cuda_backend().copy(out.grad_ref()->buffer(), kGpu, dout.storage(), kGpu, static_cast<size_t>(dout.storage_bytes()));
      Tape::run_backward();
    }, 5);
  } catch (const Error& e) {
    Tape::clear();
    report("gpu_attention_" + kernel, std::string("skipped: ") + e.what());
  }
  if (before) setenv("VDITKIT_CUDA_ATTENTION", saved.c_str(), 1);
  else unsetenv("VDITKIT_CUDA_ATTENTION");
  return ms;
}

#if VDITKIT_CUDA
// One line: the batch items, heads and workspace of each cuDNN attention launch, both directions.
std::string cudnn_plans(const VDiTConfig& config, const Shapes& s) {
  const cuda::AttentionShape shape{1, s.tokens(), s.tokens(), config.num_heads, config.head_dim()};
  std::ostringstream line;
  for (bool backward : {false, true}) {
    const cuda::CudnnAttentionPlan p = cuda::cudnn_attention_plan(shape, 0.0f, backward, 0);
    line << (backward ? "; backward " : "forward ");
    if (p.available)
      line << p.batch_per_launch << " x " << p.heads_per_launch << " heads per launch, "
           << (p.workspace_bytes >> 20) << " MiB workspace, " << p.nondeterministic_skipped
           << " nondeterministic engines skipped";
    else
      line << "not on cuDNN (" << p.why << ")";
  }
  return line.str();
}
#endif

double gemm_ms(const VDiTConfig& config, const Shapes& s) {
#if VDITKIT_CUDA
  return cuda::time_bf16_gemm(s.tokens(), config.ffn_dim, config.dim, 10, 0);
#else
  return 0.0;
#endif
}

// PyTorch's figures per token count (bench/torch_gpu.py under VDITKIT_TORCH_PYTHON, e.g.
// /opt/torch/.venv/bin/python3), or empty with the reason printed.
std::vector<std::array<int64_t, 3>> grids() {
  std::vector<std::array<int64_t, 3>> out;
  for (const Shapes& s : kShapes) out.push_back(s.grid);
  return out;
}

std::vector<Figures> torch_figures() {
  std::vector<Figures> out;
  for (const auto& r : torch_gpu_rows("", grids(), "torch")) out.push_back({r[0], r[1], r[2], r[3]});
  return out;
}

void print_table(const VDiTConfig& config, const std::vector<Figures>& ours, const std::vector<Figures>& torch) {
  std::ostringstream t;
  t << std::fixed << std::setprecision(1);
  t << "\n" << std::left << std::setw(34) << "Wan2.1-1.3B shapes" << std::right << std::setw(8) << "tokens"
    << std::setw(12) << "ours" << std::setw(12) << "PyTorch" << std::setw(14) << "PyTorch/ours" << "\n";
  for (size_t i = 0; i < kShapes.size(); ++i) {
    const int64_t n = kShapes[i].tokens();
    const Figures& o = ours[i];
    const Figures* p = torch.empty() ? nullptr : &torch[i];
    auto row = [&](const std::string& name, double mine, double theirs, double tflop) {
      // Times in ms; with a FLOP count, throughput in TFLOP/s.
      const double a = tflop > 0 ? tflop / (mine / 1e3) : mine, b = tflop > 0 ? tflop / (theirs / 1e3) : theirs;
      t << std::left << std::setw(34) << name << std::right << std::setw(8) << n << std::setw(12) << a;
      if (p) t << std::setw(12) << b << std::setw(13) << std::setprecision(2) << theirs / mine << "x" << std::setprecision(1);
      t << "\n";
    };
    row("block forward+backward (ms)", o.block_ms, p ? p->block_ms : 0, 0);
    row("30-block forward (ms)", o.forward_ms, p ? p->forward_ms : 0, 0);
    row("attention fwd+bwd own (TFLOP/s)", o.attention_ms, p ? p->attention_ms : 0, attention_tflop(n, config));
    if (o.cudnn_attention_ms > 0)
      row("attention fwd+bwd cuDNN (TFLOP/s)", o.cudnn_attention_ms, p ? p->attention_ms : 0, attention_tflop(n, config));
    row("largest bf16 GEMM (TFLOP/s)", o.gemm_ms, p ? p->gemm_ms : 0, gemm_tflop(n, config));
  }
  std::cout << t.str() << std::flush;
}

void run_gpu() {
  if (!cuda_available()) {
    report("gpu", "skipped: no CUDA device visible (or vditkit built without -DVDITKIT_CUDA=ON)");
    return;
  }
  const std::vector<Figures> torch = torch_figures();
  const std::vector<TrainingFigures> torch_training = torch_training_figures(grids());
  const VDiTConfig config = VDiTConfig::wan_1_3b();
  Rng rng(0);
  std::vector<Figures> ours(kShapes.size());
  for (size_t i = 0; i < kShapes.size(); ++i) {
    const std::string n = std::to_string(kShapes[i].tokens());
    ours[i].block_ms = block_forward_backward_ms(config, kShapes[i], rng);
    report("gpu_block_fwd_bwd_ms_" + n, ours[i].block_ms);
    report_block_memory(config, kShapes[i], rng);
    ours[i].attention_ms = attention_ms(config, kShapes[i], rng, "own");
    report("gpu_attention_fwd_bwd_ms_" + n, ours[i].attention_ms);
#if VDITKIT_CUDA
    if (cuda::cudnn_attention_built()) {
      ours[i].cudnn_attention_ms = attention_ms(config, kShapes[i], rng, "cudnn");
      report("gpu_cudnn_attention_fwd_bwd_ms_" + n, ours[i].cudnn_attention_ms);
      report("gpu_cudnn_attention_plans_" + n, cudnn_plans(config, kShapes[i]));
    }
#endif
    ours[i].gemm_ms = gemm_ms(config, kShapes[i]);
    report("gpu_gemm_ms_" + n, ours[i].gemm_ms);
  }
  {
    VDiT model(config, init_wan_parameters(config, 1));  // every parameter frozen: bf16 on the GPU
    model.to(kGpu);
    for (size_t i = 0; i < kShapes.size(); ++i) {
      ours[i].forward_ms = full_forward_ms(model, config, kShapes[i], rng);
      report("gpu_forward_ms_" + std::to_string(kShapes[i].tokens()), ours[i].forward_ms);
    }
  }
  report("gpu_peak_gib", cuda_backend().memory_stats(0).peak / double(1 << 30));
  print_table(config, ours, torch);
  print_training_figures(grids(), torch_training);
}

// The training rows alone (retraining and temperature tuning, PyTorch's and ours): a few
// minutes less than the whole section.
void run_gpu_training() {
  if (!cuda_available()) {
    report("gpu_training", "skipped: no CUDA device visible (or vditkit built without -DVDITKIT_CUDA=ON)");
    return;
  }
  print_training_figures(grids(), torch_training_figures(grids()));
}

Register gpu_section("gpu", "Wan2.1-1.3B block, forward, attention and GEMM on the GPU against PyTorch", run_gpu);
Register gpu_training_section("gpu_training", "the retraining and temperature-tuning steps of the gpu section alone",
                              run_gpu_training);

}  // namespace

}  // namespace vdit::bench
