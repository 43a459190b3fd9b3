// attention_benchmark (attention_kernels.cuh): the fused attention's throughput at one shape on
// random inputs, timed with CUDA events around `repeats` back-to-back launches (after a warm-up),
// for `vditkit-bench gpu` to print beside PyTorch's scaled_dot_product_attention.
#include "autograd/cuda/attention_kernels.cuh"

#include <vector>

namespace vdit::cuda {
namespace {

// Uniform in [-amplitude, amplitude) from a hash of the index: no host data, no RNG state.
__device__ float hashed_uniform(int64_t i, uint32_t seed, float amplitude) {
  uint32_t x = static_cast<uint32_t>(i) * 0x9e3779b9u ^ static_cast<uint32_t>(i >> 32) ^ seed;
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  x ^= x >> 16;
  return amplitude * (static_cast<float>(x >> 8) * (2.0f / 16777216.0f) - 1.0f);
}
__global__ void fill_bf16(__nv_bfloat16* x, int64_t n, uint32_t seed, float amplitude) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16(hashed_uniform(i, seed, amplitude));
}
__global__ void fill_f32(float* x, int64_t n, uint32_t seed, float amplitude) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = hashed_uniform(i, seed, amplitude);
}

// Device allocations released together, whatever the exit path.
struct Allocations {
  std::vector<void*> blocks;
  cudaError_t error = cudaSuccess;
  template <typename T>
  T* get(size_t count) {
    void* p = nullptr;
    if (error == cudaSuccess) error = cudaMalloc(&p, count * sizeof(T));
    blocks.push_back(p);
    return static_cast<T*>(p);
  }
  ~Allocations() {
    for (void* p : blocks) cudaFree(p);
  }
};

}  // namespace

AttentionTiming attention_benchmark(int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim, int repeats) {
  AttentionTiming timing;
  const int64_t n = batch * tokens * heads * head_dim;
  Allocations mem;
  AttentionInputs in;
  in.shape = {batch, tokens, tokens, heads, head_dim};
  auto* q = mem.get<__nv_bfloat16>(n);
  auto* k = mem.get<__nv_bfloat16>(n);
  auto* v = mem.get<__nv_bfloat16>(n);
  auto* out = mem.get<__nv_bfloat16>(n);
  float* lse = mem.get<float>(batch * heads * tokens);
  float* dout = mem.get<float>(n);
  AttentionGrads grads{mem.get<float>(n), mem.get<float>(n), mem.get<float>(n), nullptr};
  const size_t workspace_bytes = attention_backward_workspace_bytes(in.shape);
  void* workspace = mem.get<unsigned char>(workspace_bytes);
  if (mem.error != cudaSuccess) {
    timing.error = std::string("attention benchmark: cudaMalloc failed: ") + cudaGetErrorString(mem.error);
    return timing;
  }
  in.q = q, in.k = k, in.v = v;
  fill_bf16<<<1024, 256>>>(q, n, 1, 2.0f);
  fill_bf16<<<1024, 256>>>(k, n, 2, 2.0f);
  fill_bf16<<<1024, 256>>>(v, n, 3, 1.0f);
  fill_f32<<<1024, 256>>>(dout, n, 4, 1.0f);
  for (float* g : {grads.dq, grads.dk, grads.dv}) cudaMemsetAsync(g, 0, n * sizeof(float));

  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaStreamCreate(&stream);
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  auto step = [&](bool backward) {
    std::string e = attention_forward(in, out, lse, stream);
    if (e.empty() && backward)
      e = attention_backward(in, out, lse, dout, grads, workspace, workspace_bytes, stream);
    return e;
  };
  auto time_ms = [&](bool backward, double* ms) {
    if (std::string e = step(backward); !e.empty()) return e;  // warm-up
    cudaEventRecord(start, stream);
    for (int r = 0; r < repeats; ++r)
      if (std::string e = step(backward); !e.empty()) return e;
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float elapsed = 0;
    if (cudaError_t e = cudaEventElapsedTime(&elapsed, start, stop); e != cudaSuccess)
      return std::string("attention benchmark: ") + cudaGetErrorString(e);
    *ms = elapsed / repeats;
    return std::string();
  };
  cudaDeviceSynchronize();
  timing.error = time_ms(false, &timing.forward_ms);
  if (timing.error.empty()) timing.error = time_ms(true, &timing.forward_backward_ms);
  const double forward_flop = 4.0 * batch * heads * static_cast<double>(tokens) * tokens * head_dim;
  if (timing.error.empty()) {
    timing.forward_tflops = forward_flop / (timing.forward_ms * 1e-3) / 1e12;
    timing.forward_backward_tflops = 3.5 * forward_flop / (timing.forward_backward_ms * 1e-3) / 1e12;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return timing;
}

}  // namespace vdit::cuda
