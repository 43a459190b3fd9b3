// cuDNN SDPA through the backend API (see attention_cudnn.h): the operation graphs are the ones
// cuDNN's fused flash-attention engines recognise (those cudnn-frontend's SDPA nodes lower to),
// written out here with backend descriptors; heuristics (mode A, then fallback) rank the engine
// configurations and the first deterministic one that finalizes becomes the cached plan.
#include "autograd/cuda/attention_cudnn.h"

#if VDITKIT_HAVE_CUDNN

#include <cudnn.h>

#include <array>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "autograd/check.h"
#include "autograd/cuda/runtime.h"
#include "autograd/tensor.h"

namespace vdit::cuda {

namespace {

// The failed call, cuDNN's status string and its last error message.
std::string cudnn_message(const std::string& call, cudnnStatus_t status) {
  char last[1024] = {};
  cudnnGetLastErrorString(last, sizeof last);
  std::ostringstream s;
  s << "cuDNN " << call << ": " << cudnnGetErrorString(status);
  if (last[0]) s << " (" << last << ")";
  return s.str();
}

void check(cudnnStatus_t status, const std::string& call) {
  VDIT_CHECK(status == CUDNN_STATUS_SUCCESS, cudnn_message(call, status));
}

// Thrown while building a plan when cuDNN has no engine for the graph: the op falls back to ours
// (as it does for any other failure while building; only running a built plan throws).
struct Unsupported {
  std::string why;
};

void finalize(cudnnBackendDescriptor_t d, const char* what) {
  const cudnnStatus_t status = cudnnBackendFinalize(d);
  if (CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED)
    throw Unsupported{cudnn_message(std::string("cudnnBackendFinalize(") + what + ")", status)};
  check(status, std::string("cudnnBackendFinalize(") + what + ")");
}

void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
         int64_t count, const void* values) {
  check(cudnnBackendSetAttribute(d, name, type, count, values),
        "cudnnBackendSetAttribute(attribute " + std::to_string(static_cast<int>(name)) + ")");
}
void set_descriptor(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value) {
  set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
}

// Every descriptor of one graph and its plan, destroyed together: the plan may refer to them.
class Descriptors {
 public:
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    for (auto it = all_.rbegin(); it != all_.rend(); ++it) cudnnBackendDestroyDescriptor(*it);
  }
  cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d = nullptr;
    check(cudnnBackendCreateDescriptor(type, &d),
          "cudnnBackendCreateDescriptor(type " + std::to_string(static_cast<int>(type)) + ")");
    all_.push_back(d);
    return d;
  }

 private:
  std::vector<cudnnBackendDescriptor_t> all_;
};

using Dims = std::array<int64_t, 4>;
constexpr cudnnDataType_t kFp32 = CUDNN_DATA_FLOAT;  // every operation computes in fp32

// Tensors and operations of one operation graph, in the order they are added.
class GraphBuilder {
 public:
  explicit GraphBuilder(Descriptors& d) : d_(d) {}

  // A tensor the variant pack binds by `uid` (a device pointer, or a host value when by_value).
  cudnnBackendDescriptor_t tensor(int64_t uid, const Dims& dims, const Dims& strides, cudnnDataType_t type,
                                  bool by_value = false) {
    return make_tensor(uid, dims, strides, type, false, by_value);
  }
  cudnnBackendDescriptor_t scalar(int64_t uid) { return tensor(uid, {1, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_FLOAT, true); }
  // An intermediate that never leaves the fused kernel.
  cudnnBackendDescriptor_t temp(const Dims& dims, const Dims& strides, cudnnDataType_t type = CUDNN_DATA_FLOAT) {
    return make_tensor(next_virtual_uid_++, dims, strides, type, true, false);
  }

  cudnnBackendDescriptor_t matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    const auto desc = configured(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul",
                                 {{CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &kFp32}});
    return operation(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul operation",
                     {{CUDNN_ATTR_OPERATION_MATMUL_ADESC, a}, {CUDNN_ATTR_OPERATION_MATMUL_BDESC, b},
                      {CUDNN_ATTR_OPERATION_MATMUL_CDESC, c}, {CUDNN_ATTR_OPERATION_MATMUL_DESC, desc}},
                     c);
  }
  // y = mode(x) or mode(x, b), in fp32.
  cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                     cudnnBackendDescriptor_t y) {
    const auto desc = configured(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise",
                                 {{CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode},
                                  {CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &kFp32}});
    return operation(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise operation",
                     {{CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, desc}, {CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x},
                      {CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b}, {CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y}},
                     y);
  }
  // y = reduction of x over the axes where y has extent 1, in fp32.
  cudnnBackendDescriptor_t reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    const auto desc = configured(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction",
                                 {{CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode},
                                  {CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &kFp32}});
    return operation(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction operation",
                     {{CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x}, {CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y},
                      {CUDNN_ATTR_OPERATION_REDUCTION_DESC, desc}},
                     y);
  }
  // y views x with other dimensions and strides (a transpose).
  cudnnBackendDescriptor_t reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    return operation(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape operation",
                     {{CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x}, {CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y}}, y);
  }

  cudnnBackendDescriptor_t finish(cudnnHandle_t handle) {
    cudnnBackendDescriptor_t graph = d_.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, static_cast<int64_t>(ops_.size()),
        ops_.data());
    set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    finalize(graph, "operation graph");
    return graph;
  }

 private:
  cudnnBackendDescriptor_t make_tensor(int64_t uid, const Dims& dims, const Dims& strides, cudnnDataType_t type,
                                       bool is_virtual, bool by_value) {
    cudnnBackendDescriptor_t t = d_.make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t alignment = 16;
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    finalize(t, "tensor");
    return t;
  }
  struct Attribute {
    cudnnBackendAttributeName_t name;
    cudnnBackendAttributeType_t type;
    const void* value;  // one element
  };
  // A finalized descriptor of `type` (an operation's settings) with the given attributes.
  cudnnBackendDescriptor_t configured(cudnnBackendDescriptorType_t type, const char* what,
                                      std::initializer_list<Attribute> attributes) {
    cudnnBackendDescriptor_t desc = d_.make(type);
    for (const Attribute& a : attributes) set(desc, a.name, a.type, 1, a.value);
    finalize(desc, what);
    return desc;
  }
  // An operation of `type` over the given descriptors (a null one is left unset), added to the
  // graph; returns its output `out`.
  cudnnBackendDescriptor_t operation(
      cudnnBackendDescriptorType_t type, const char* what,
      std::initializer_list<std::pair<cudnnBackendAttributeName_t, cudnnBackendDescriptor_t>> attributes,
      cudnnBackendDescriptor_t out) {
    cudnnBackendDescriptor_t op = d_.make(type);
    for (const auto& [name, value] : attributes)
      if (value) set_descriptor(op, name, value);
    finalize(op, what);
    ops_.push_back(op);
    return out;
  }

  Descriptors& d_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_uid_ = 1000;
};

// Variant-pack ids of the tensors the caller binds.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kScale, kDO, kDQ, kDK, kDV, kOne };

// Logical [B, H, S, D] views of `batch` items and `heads` heads of our [B, S, H, D] tensors (a
// group of heads is the same strides at a pointer offset), and the graphs' other shapes.
struct Layout {
  Dims q, q_strides, kt, kt_strides, v, v_strides, vt, vt_strides;  // kt, vt: K, V transposed
  Dims scores, scores_strides, scores_t, scores_t_strides;          // [B, H, Nq, Nk] and transposed
  Dims rows, rows_strides, stats_strides;  // one value per query: intermediates, and the lse [B, H, Nq]

  Layout(const AttentionShape& s, int64_t b, int64_t h) {
    const int64_t all_heads = s.heads, nq = s.q_len, nk = s.k_len, d = s.head_dim;
    q = {b, h, nq, d}, q_strides = {nq * all_heads * d, d, all_heads * d, 1};
    v = {b, h, nk, d}, v_strides = {nk * all_heads * d, d, all_heads * d, 1};
    kt = vt = {b, h, d, nk}, kt_strides = vt_strides = {nk * all_heads * d, d, 1, all_heads * d};
    scores = {b, h, nq, nk}, scores_strides = {h * nq * nk, nq * nk, nk, 1};
    scores_t = {b, h, nk, nq}, scores_t_strides = {h * nq * nk, nq * nk, 1, nk};
    rows = {b, h, nq, 1}, rows_strides = {h * nq, nq, 1, 1}, stats_strides = {all_heads * nq, nq, 1, 1};
  }
};

// out = softmax(q k^T * scale) v, Stats = max + log(sum exp(. - max)) per query (the lse).
void forward_graph(GraphBuilder& g, const Layout& l) {
  const auto bf16 = CUDNN_DATA_BFLOAT16;
  auto q = g.tensor(kQ, l.q, l.q_strides, bf16), kt = g.tensor(kK, l.kt, l.kt_strides, bf16),
       v = g.tensor(kV, l.v, l.v_strides, bf16), scale = g.scalar(kScale);
  auto scores = g.matmul(q, kt, g.temp(l.scores, l.scores_strides));
  scores = g.pointwise(CUDNN_POINTWISE_MUL, scores, scale, g.temp(l.scores, l.scores_strides));
  auto max = g.reduction(CUDNN_REDUCE_TENSOR_MAX, scores, g.temp(l.rows, l.rows_strides));
  auto shifted = g.pointwise(CUDNN_POINTWISE_SUB, scores, max, g.temp(l.scores, l.scores_strides));
  auto e = g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, g.temp(l.scores, l.scores_strides));
  auto sum = g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, g.temp(l.rows, l.rows_strides));
  auto log_sum = g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, g.temp(l.rows, l.rows_strides));
  g.pointwise(CUDNN_POINTWISE_ADD, max, log_sum, g.tensor(kStats, l.rows, l.stats_strides, CUDNN_DATA_FLOAT));
  // P enters the second GEMM in bf16, as in every flash-attention kernel.
  auto p = g.pointwise(CUDNN_POINTWISE_DIV, e, sum, g.temp(l.scores, l.scores_strides, bf16));
  g.matmul(p, v, g.tensor(kO, l.q, l.q_strides, bf16));
}

// dV = P^T dO, dS = P * (dO V^T - rowsum(dO * O)) * scale, dK = dS^T Q, dQ = dS K, with
// P = exp(q k^T * scale - Stats). dQ is the graph's direct output in bf16: an fp32 dQ from the
// dS K product is cuDNN's "dQ accumulator" pattern (float atomics, nondeterministic, and it then
// wants a separate dQ output: measured, execution fails with dq_ptr null), so the gradients stay
// in the I/O type and the op adds them into its fp32 buffers.
void backward_graph(GraphBuilder& g, const Layout& l) {
  const auto bf16 = CUDNN_DATA_BFLOAT16;
  auto q = g.tensor(kQ, l.q, l.q_strides, bf16), kt = g.tensor(kK, l.kt, l.kt_strides, bf16),
       vt = g.tensor(kV, l.vt, l.vt_strides, bf16), o = g.tensor(kO, l.q, l.q_strides, bf16),
       d_o = g.tensor(kDO, l.q, l.q_strides, bf16), stats = g.tensor(kStats, l.rows, l.stats_strides, CUDNN_DATA_FLOAT),
       scale = g.scalar(kScale), one = g.scalar(kOne);
  // rowsum(dO * O), times 1 where dropout would put its inverse scale.
  auto d_o_o = g.pointwise(CUDNN_POINTWISE_MUL, d_o, o, g.temp(l.q, l.q_strides));
  auto row_sum = g.reduction(CUDNN_REDUCE_TENSOR_ADD, d_o_o, g.temp(l.rows, l.rows_strides));
  row_sum = g.pointwise(CUDNN_POINTWISE_MUL, row_sum, one, g.temp(l.rows, l.rows_strides));
  // P, recomputed from the forward's statistics.
  auto scores = g.matmul(q, kt, g.temp(l.scores, l.scores_strides));
  scores = g.pointwise(CUDNN_POINTWISE_MUL, scores, scale, g.temp(l.scores, l.scores_strides));
  scores = g.pointwise(CUDNN_POINTWISE_SUB, scores, stats, g.temp(l.scores, l.scores_strides));
  auto p = g.pointwise(CUDNN_POINTWISE_EXP, scores, nullptr, g.temp(l.scores, l.scores_strides));
  auto p_t = g.reshape(p, g.temp(l.scores_t, l.scores_t_strides, bf16));
  g.matmul(p_t, d_o, g.tensor(kDV, l.v, l.v_strides, bf16));
  // dS, times 1 where dropout would put its mask.
  auto dp = g.matmul(d_o, vt, g.temp(l.scores, l.scores_strides));
  dp = g.pointwise(CUDNN_POINTWISE_MUL, dp, one, g.temp(l.scores, l.scores_strides));
  dp = g.pointwise(CUDNN_POINTWISE_SUB, dp, row_sum, g.temp(l.scores, l.scores_strides));
  auto ds = g.pointwise(CUDNN_POINTWISE_MUL, dp, p, g.temp(l.scores, l.scores_strides));
  ds = g.pointwise(CUDNN_POINTWISE_MUL, ds, scale, g.temp(l.scores, l.scores_strides));
  auto ds_t = g.reshape(ds, g.temp(l.scores_t, l.scores_t_strides, bf16));
  g.matmul(ds_t, q, g.tensor(kDK, l.v, l.v_strides, bf16));
  // K itself (the graph binds it transposed), for dQ = dS K.
  Dims k_strides = l.kt_strides;
  std::swap(k_strides[2], k_strides[3]);
  auto k = g.reshape(kt, g.temp(l.v, k_strides));
  g.matmul(ds, k, g.tensor(kDQ, l.q, l.q_strides, bf16));
}

bool nondeterministic(cudnnBackendDescriptor_t engine) {
  std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
  int64_t count = 0;
  check(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 static_cast<int64_t>(notes.size()), &count, notes.data()),
        "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINE_NUMERICAL_NOTE)");
  for (int64_t i = 0; i < count; ++i)
    if (notes[static_cast<size_t>(i)] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return true;
  return false;
}

// The first engine configuration, in heuristics order, that is deterministic and finalizes;
// *skipped counts those passed over as nondeterministic.
cudnnBackendDescriptor_t choose_plan(Descriptors& d, cudnnHandle_t handle, cudnnBackendDescriptor_t graph,
                                     int* skipped) {
  std::string reasons;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    cudnnBackendDescriptor_t heuristics = d.make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    set_descriptor(heuristics, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    set(heuristics, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    finalize(heuristics, "engine heuristics");
    int64_t count = 0;
    check(cudnnBackendGetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                   nullptr),
          "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS count)");
    std::vector<cudnnBackendDescriptor_t> configs(static_cast<size_t>(count));
    for (auto& c : configs) c = d.make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    check(cudnnBackendGetAttribute(heuristics, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                   &count, configs.data()),
          "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)");
    for (int64_t i = 0; i < count; ++i) {
      cudnnBackendDescriptor_t engine = d.make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      int64_t n = 0;
      check(cudnnBackendGetAttribute(configs[static_cast<size_t>(i)], CUDNN_ATTR_ENGINECFG_ENGINE,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine),
            "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINECFG_ENGINE)");
      if (nondeterministic(engine)) {
        ++*skipped;
        continue;
      }
      cudnnBackendDescriptor_t plan = d.make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      set_descriptor(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[static_cast<size_t>(i)]);
      const cudnnStatus_t status = cudnnBackendFinalize(plan);
      if (status == CUDNN_STATUS_SUCCESS) return plan;
      reasons = cudnn_message("cudnnBackendFinalize(execution plan)", status);
    }
  }
  throw Unsupported{"no deterministic cuDNN engine (" + std::to_string(*skipped) + " nondeterministic skipped)" +
                    (reasons.empty() ? "" : "; last: " + reasons)};
}

enum class Direction { forward, backward };

// A built plan, or why cuDNN cannot run this case (then `plan` is null).
struct Entry {
  Descriptors descriptors;
  cudnnBackendDescriptor_t plan = nullptr;
  int64_t workspace_bytes = 0;
  int nondeterministic_skipped = 0;  // engine configurations ranked before the chosen one
  std::string unsupported;
};

// One handle per device, on that device's stream. Never destroyed: cuDNN objects must not be
// torn down during static destruction, after the CUDA runtime may be gone.
cudnnHandle_t handle(int device) {
  static std::mutex mutex;
  static auto* handles = new std::map<int, cudnnHandle_t>;
  std::lock_guard<std::mutex> lock(mutex);
  cudnnHandle_t& h = (*handles)[device];
  if (!h) {
    DeviceGuard guard(device);
    check(cudnnCreate(&h), "cudnnCreate");
    check(cudnnSetStream(h, stream(device)), "cudnnSetStream");
  }
  return h;
}

// VDITKIT_CUDNN_WORKSPACE_MIB (default 4096): the most workspace one launch may take. The
// deterministic backward on Hopper (before cuDNN 9.25) keeps dP there, Nq Nk 2 bytes per batch item
// and head (2 GiB per head at Wan2.1's 32,760 tokens, 26 GB for its 12 heads), so the backward runs
// over groups of heads that fit.
int64_t workspace_cap() {
  const char* env = std::getenv("VDITKIT_CUDNN_WORKSPACE_MIB");
  if (!env || !*env) return int64_t{4096} << 20;
  char* end = nullptr;
  const long long mib = std::strtoll(env, &end, 10);
  VDIT_CHECK(*end == '\0' && mib > 0, "VDITKIT_CUDNN_WORKSPACE_MIB=" << env << ": expected a positive number of MiB");
  return static_cast<int64_t>(mib) << 20;
}

float resolved_scale(const AttentionShape& s, float scale) {
  return scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
}

// The cached plan for launches over `batch` items and `heads` heads of the op's tensors, built on
// first use.
const Entry& entry(const AttentionShape& s, float scale, Direction direction, int device, int64_t batch,
                   int64_t heads) {
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, Direction, int64_t, int64_t>;
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &scale, sizeof scale_bits);
  const Key key{device, s.batch, s.q_len, s.k_len, s.heads, s.head_dim, scale_bits, direction, batch, heads};
  static std::mutex mutex;
  static auto* cache = new std::map<Key, std::unique_ptr<Entry>>;  // never destroyed, as handles
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Entry>& e = (*cache)[key];
  if (e) return *e;
  auto built = std::make_unique<Entry>();
  const cudnnHandle_t h = handle(device);
  DeviceGuard guard(device);
  try {
    GraphBuilder g(built->descriptors);
    const Layout layout(s, batch, heads);
    if (direction == Direction::forward) forward_graph(g, layout);
    else backward_graph(g, layout);
    built->plan = choose_plan(built->descriptors, h, g.finish(h), &built->nondeterministic_skipped);
    check(cudnnBackendGetAttribute(built->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, nullptr,
                                   &built->workspace_bytes),
          "cudnnBackendGetAttribute(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)");
  } catch (const Unsupported& u) {
    built->plan = nullptr;
    built->unsupported = u.why;
  } catch (const Error& error) {  // cuDNN rejected the graph otherwise: our kernel serves this case
    built->plan = nullptr;
    built->unsupported = error.what();
  }
  e = std::move(built);
  return *e;
}

// How the op runs on cuDNN: one plan over all batch items and heads where its workspace fits the
// cap, else over one batch item and the most heads (a divisor of H) that fit, launched per group.
struct Groups {
  const Entry* entry = nullptr;  // null when cuDNN cannot run the case within the cap
  int64_t batch = 0, heads = 0;
  std::string why;
};

Groups groups(const AttentionShape& s, float scale, Direction direction, int device) {
  const int64_t cap = workspace_cap();
  const Entry& all = entry(s, scale, direction, device, s.batch, s.heads);
  if (!all.plan) return {nullptr, 0, 0, all.unsupported};
  if (all.workspace_bytes <= cap) return {&all, s.batch, s.heads, ""};
  const double per_head = static_cast<double>(all.workspace_bytes) / static_cast<double>(s.batch * s.heads);
  int64_t smallest = all.workspace_bytes;
  for (int64_t heads = s.heads; heads >= 1; --heads) {
    if (s.heads % heads != 0 || (heads > 1 && heads * per_head > static_cast<double>(cap))) continue;
    const Entry& e = entry(s, scale, direction, device, 1, heads);
    if (e.plan && e.workspace_bytes <= cap) return {&e, 1, heads, ""};
    if (e.plan) smallest = std::min(smallest, e.workspace_bytes);
  }
  return {nullptr, 0, 0,
          "the cuDNN plan needs " + std::to_string(smallest >> 20) + " MiB of workspace even for one head, over " +
              "VDITKIT_CUDNN_WORKSPACE_MIB=" + std::to_string(cap >> 20)};
}

// Element offsets of each launch's first batch item and head in q/out, k/v and the lse.
struct Offsets {
  int64_t q, k, lse;
};
std::vector<Offsets> launches(const AttentionShape& s, const Groups& g) {
  std::vector<Offsets> out;
  for (int64_t b = 0; b < s.batch; b += g.batch)
    for (int64_t h = 0; h < s.heads; h += g.heads)
      out.push_back({(b * s.q_len * s.heads + h) * s.head_dim, (b * s.k_len * s.heads + h) * s.head_dim,
                     (b * s.heads + h) * s.q_len});
  return out;
}

// Runs a plan on the device's stream with the tensors `uids` bound to `pointers`.
void execute(const Entry& e, int device, const std::vector<int64_t>& uids, const std::vector<void*>& pointers) {
  DeviceGuard guard(device);
  Tensor workspace;
  if (e.workspace_bytes > 0)
    workspace = Tensor::empty({(e.workspace_bytes + 3) / 4}, DType::F32, Device::cuda(device));
  void* workspace_ptr = workspace.defined() ? workspace.storage() : nullptr;
  Descriptors d;
  cudnnBackendDescriptor_t pack = d.make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, static_cast<int64_t>(uids.size()), uids.data());
  set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, static_cast<int64_t>(pointers.size()),
      pointers.data());
  set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace_ptr);
  check(cudnnBackendFinalize(pack), "cudnnBackendFinalize(variant pack)");
  // The workspace goes back to the allocator after the launch: its reuse is ordered on the stream.
  check(cudnnBackendExecute(handle(device), e.plan, pack), "cudnnBackendExecute");
}

void* ptr(const void* p) { return const_cast<void*>(p); }

}  // namespace

bool cudnn_attention_built() { return true; }

CudnnAttentionPlan cudnn_attention_plan(const AttentionShape& shape, float scale, bool backward, int device) {
  const Groups g = groups(shape, resolved_scale(shape, scale), backward ? Direction::backward : Direction::forward,
                          device);
  if (!g.entry) return {false, 0, 0, 0, 0, g.why};
  return {true, g.batch, g.heads, g.entry->workspace_bytes, g.entry->nondeterministic_skipped, ""};
}

bool cudnn_attention_forward(const AttentionShape& shape, float scale, const __nv_bfloat16* q,
                             const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out, float* lse,
                             int device, std::string* why) {
  float c = resolved_scale(shape, scale);
  const Groups g = groups(shape, c, Direction::forward, device);
  if (!g.entry) {
    *why = g.why;
    return false;
  }
  for (const Offsets& o : launches(shape, g))
    execute(*g.entry, device, {kQ, kK, kV, kO, kStats, kScale},
            {ptr(q + o.q), ptr(k + o.k), ptr(v + o.k), out + o.q, lse + o.lse, &c});
  return true;
}

bool cudnn_attention_backward(const AttentionShape& shape, float scale, const CudnnAttentionBackward& io,
                              int device, std::string* why) {
  float c = resolved_scale(shape, scale), one = 1.0f;
  const Groups g = groups(shape, c, Direction::backward, device);
  if (!g.entry) {
    *why = g.why;
    return false;
  }
  for (const Offsets& o : launches(shape, g))
    execute(*g.entry, device, {kQ, kK, kV, kO, kStats, kScale, kDO, kDQ, kDK, kDV, kOne},
            {ptr(io.q + o.q), ptr(io.k + o.k), ptr(io.v + o.k), ptr(io.out + o.q), ptr(io.lse + o.lse), &c,
             ptr(io.dout + o.q), io.dq + o.q, io.dk + o.k, io.dv + o.k, &one});
  return true;
}

}  // namespace vdit::cuda

#else  // built without cuDNN: every case runs our kernel

namespace vdit::cuda {

bool cudnn_attention_built() { return false; }

CudnnAttentionPlan cudnn_attention_plan(const AttentionShape&, float, bool, int) {
  return {false, 0, 0, 0, 0, "vditkit was built without cuDNN"};
}

bool cudnn_attention_forward(const AttentionShape&, float, const __nv_bfloat16*, const __nv_bfloat16*,
                             const __nv_bfloat16*, __nv_bfloat16*, float*, int, std::string* why) {
  *why = "vditkit was built without cuDNN";
  return false;
}

bool cudnn_attention_backward(const AttentionShape&, float, const CudnnAttentionBackward&, int, std::string* why) {
  *why = "vditkit was built without cuDNN";
  return false;
}

}  // namespace vdit::cuda

#endif
