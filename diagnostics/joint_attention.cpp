// Joint attention cut into the parts the statistics already measure: narrowed rows of q, k, v
// (slice and concat, which run where the tensors live), so the CPU and the GPU statistics serve
// it unchanged.
#include "diagnostics/joint_attention.h"

#include "autograd/check.h"
#include "diagnostics/attention_call.h"
#include "diagnostics/sparse_attention.h"

namespace vdit {

namespace {

// Rows [begin, begin + count) of t [1, N, H, hd]; t itself when that is every row.
Tensor rows(const Tensor& t, int64_t begin, int64_t count) {
  return begin == 0 && count == t.size(1) ? t : slice(t, 1, begin, begin + count);
}

// The unmasked keys (or values) in the call's order: the video rows and the real text rows.
Tensor unmasked(const Tensor& video, const Tensor& text, bool text_first) {
  if (!text.defined()) return video;
  return text_first ? concat({text, video}, 1) : concat({video, text}, 1);
}

void check_layout(const AttentionCall& call, const TokenGrid* grid) {
  const JointLayout& j = call.joint;
  const int64_t n_q = call.q.size(1), n_k = call.k.size(1);
  const bool video_first = j.video_begin == 0 && j.text_begin == j.video_count;
  const bool text_first = j.text_begin == 0 && j.video_begin == j.text_count;
  VDIT_CHECK(call.q.ndim() == 4 && call.k.ndim() == 4 && call.v.shape() == call.k.shape() && j.video_count >= 1 &&
                 j.text_count >= 0 && j.video_count + j.text_count == n_k && (video_first || text_first) &&
                 (n_q == n_k || n_q == j.video_count),
             "block " << call.block << " joint attention: layout video [" << j.video_begin << ", +" << j.video_count
                      << "), text [" << j.text_begin << ", +" << j.text_count << ") does not cut q "
                      << to_string(call.q.shape()) << ", k " << to_string(call.k.shape()) << ", v "
                      << to_string(call.v.shape())
                      << " (keys: video then text or text then video; queries: the same rows or the video rows)");
  VDIT_CHECK(!grid || grid->tokens() == j.video_count,
             "block " << call.block << " joint attention: " << j.video_count << " video rows, but the token grid "
                      << grid->frames << "x" << grid->height << "x" << grid->width << " has " << grid->tokens());
}

// How many text rows of batch row `row` are real: the key mask's text range must be ones then
// zeros (real rows first) and its video range all ones.
int64_t real_text_rows(const AttentionCall& call, int64_t row) {
  const JointLayout& j = call.joint;
  if (!call.options.key_mask.defined()) return j.text_count;
  const std::vector<float> mask = batch_row(call.options.key_mask, row).to_vector();
  const float* m = mask.data();
  int64_t real = 0;
  while (real < j.text_count && m[j.text_begin + real] != 0.0f) ++real;
  bool padding_after = true, video_real = true;
  for (int64_t i = real; i < j.text_count; ++i) padding_after &= m[j.text_begin + i] == 0.0f;
  for (int64_t i = 0; i < j.video_count; ++i) video_real &= m[j.video_begin + i] != 0.0f;
  VDIT_CHECK(padding_after && video_real,
             "block " << call.block << " joint attention, batch row " << row << ": the key mask must keep every video "
                      << "row [" << j.video_begin << ", +" << j.video_count << ") and the text rows [" << j.text_begin
                      << ", +" << j.text_count << ") real first, padding after");
  return real;
}

// Per head, the mean over the rows of q [1, n, H, hd] of the joint mass on the text keys: the
// attention over the unmasked keys of a value that is 1 on text keys and 0 on video keys.
std::vector<double> mean_text_mass(const Tensor& q, const JointParts& p, const AttentionOptions& call_options) {
  const Tensor& v = p.keys_v;
  const Shape video_shape{1, p.video_v.size(1), v.size(2), v.size(3)};
  const Tensor ones = Tensor::full({1, p.keys.real_text, v.size(2), v.size(3)}, 1.0f);
  const Tensor text_ones = (v.dtype() == DType::BF16 ? ones.to_bf16() : ones).to(v.device());
  const Tensor indicator = unmasked(Tensor::zeros(video_shape, v.dtype(), v.device()), text_ones, p.keys.text_first);
  AttentionOptions options;
  if (call_options.temperature.defined()) options.temperature = call_options.temperature.detach();
  options.scale = call_options.scale;
  const Tensor out = attention(q, p.keys_k, indicator, options);
  const std::vector<float> mass = mean(slice(out, 3, 0, 1), {0, 1, 3}).to_vector();
  return {mass.begin(), mass.end()};
}

}  // namespace

std::string JointKeyOrder::position(int64_t key, const TokenGrid& grid) const {
  const int64_t text_at = text_first ? 0 : video, video_at = text_first ? real_text : 0;
  if (key >= text_at && key < text_at + real_text) return "text " + std::to_string(key - text_at);
  return grid.position(key - video_at);
}

JointParts cut_joint_call(const AttentionCall& call, int64_t row, const TokenGrid* grid) {
  VDIT_CHECK(call.kind == AttentionKind::Joint, "block " << call.block << ": only a joint attention call has a joint layout");
  check_layout(call, grid);
  const JointLayout& j = call.joint;
  const Tensor q = batch_row(call.q, row), k = batch_row(call.k, row), v = batch_row(call.v, row);
  const bool same_rows = call.q.size(1) == call.k.size(1);
  JointParts p;
  const int64_t real = real_text_rows(call, row);
  p.keys = {j.video_count, real, j.text_begin == 0 && j.text_count > 0};
  p.video_q = same_rows ? rows(q, j.video_begin, j.video_count) : q;
  p.video_k = rows(k, j.video_begin, j.video_count);
  p.video_v = rows(v, j.video_begin, j.video_count);
  if (real > 0) {
    if (same_rows) p.text_q = rows(q, j.text_begin, real);
    p.text_k = rows(k, j.text_begin, real);
    p.text_v = rows(v, j.text_begin, real);
  }
  // Mochi's keys (video, real text, padding) leave the unmasked ones contiguous: no copy.
  const bool contiguous = !p.keys.text_first || real == j.text_count;
  const int64_t unmasked_rows = j.video_count + real;
  p.keys_k = contiguous ? rows(k, 0, unmasked_rows) : unmasked(p.video_k, p.text_k, true);
  p.keys_v = contiguous ? rows(v, 0, unmasked_rows) : unmasked(p.video_v, p.text_v, true);
  return p;
}

JointStats joint_attention_statistics(const AttentionCall& call, const TokenGrid& grid,
                                      const AttentionStatsOptions& options) {
  JointStats s;
  s.parts = cut_joint_call(call, 0, &grid);
  const JointParts& p = s.parts;
  const float scale = attention_scale(call.options, call.q);
  const std::vector<float> tau = temperatures(call.options, call.q.size(2));
  const auto statistics = [&](const Tensor& q, const Tensor& k, const TokenGrid* g) {
    return attention_statistics(sample_heads(q), sample_heads(k), scale, tau, g, options);
  };
  s.video_to_video = statistics(p.video_q, p.video_k, &grid);
  if (p.keys.real_text >= 2) s.video_to_text = statistics(p.video_q, p.text_k, nullptr);
  if (p.text_q.defined()) s.text_to_all = statistics(p.text_q, p.keys_k, nullptr);
  if (p.keys.real_text > 0) {
    s.video_text_mass = mean_text_mass(p.video_q, p, call.options);
    if (p.text_q.defined()) s.text_text_mass = mean_text_mass(p.text_q, p, call.options);
  }
  return s;
}

Tensor sparse_joint_attention(const AttentionCall& call, double keep_fraction) {
  const int64_t batch = call.q.size(0);
  std::vector<JointParts> parts;
  bool every_key_kept = true;
  for (int64_t b = 0; b < batch; ++b) {
    parts.push_back(cut_joint_call(call, b));
    const int64_t keys = parts.back().keys_k.size(1);
    every_key_kept &= kept_keys(keep_fraction, keys) == keys;
  }
  if (every_key_kept) return {};
  const float scale = attention_scale(call.options, call.q);
  const std::vector<float> tau = temperatures(call.options, call.q.size(2));
  std::vector<Tensor> out;
  for (int64_t b = 0; b < batch; ++b)
    out.push_back(sparse_attention(batch_row(call.q, b), parts[b].keys_k, parts[b].keys_v, scale, tau, keep_fraction));
  return batch == 1 ? out.front() : concat(out, 0);
}

}  // namespace vdit
