#pragma once
// Joint attention (Mochi-1, CogVideoX-2b: video and text rows in one softmax) measured in the
// three parts every family's report shows (issue 17, item 4), so that a report reads the same
// way whether a model has Wan's separate self- and cross-attention or one joint attention:
//
//   video-to-video (report kind self_attn): the video queries over the video keys, with each
//     query's joint probabilities restricted to the video keys and renormalised,
//     p(j | i, j video) = p_ij / sum_{j' video} p_ij'. Entropy (over log of the video key count),
//     sinks at (frame, row, column), sparsity, locality and the pooled map then mean what they
//     mean for Wan's self-attention: how a video query spreads its attention over the video,
//     given that it attends to video.
//   video-to-text (cross_attn): the video queries over the real (unmasked) text keys,
//     renormalised the same way: Wan's cross-attention statistics, text positions labelled.
//   text-to-all (text_attn): the real text queries over every unmasked key, as the joint softmax
//     has them (nothing renormalised). Absent where the queries are the video rows only (Mochi's
//     last block).
//   text_key_mass: per head, the mean over queries of the joint mass on the real text keys, for
//     the video queries (video_text_mass; their mass on video keys is one minus it) and the text
//     queries (text_text_mass): the weights that tie the conditional parts back to the joint map.
//
// A softmax restricted to a subset of its keys and renormalised is the softmax over that subset
// (the joint partition function cancels), so each part is the existing statistics
// (attention_stats.h) of the call narrowed to its rows: the same code, and on a GPU the same
// kernels, as Wan's self- and cross-attention. The masses come from the attention op itself over
// the unmasked keys with value 1 on text keys and 0 on video keys (on a GPU in bf16: to about 0.4%).
//
// Padding: text keys with key_mask 0 are padding and get no mass in the joint softmax; the real
// text rows come first (ModelInputs' context_mask), so the cut keeps a prefix of the text range
// and a mask of any other shape is an error naming the call's layout.
#include <cstdint>
#include <string>
#include <vector>

#include "diagnostics/attention_stats.h"
#include "layers/attention_probe.h"

namespace vdit {

// The unmasked keys of a joint call, in its order: the video rows and the real text rows.
struct JointKeyOrder {
  int64_t video = 0, real_text = 0;
  bool text_first = false;  // text rows before video rows (CogVideoX)

  // What unmasked key `key` is: "(f,r,c)" for a video token of `grid`, "text j" for text row j.
  std::string position(int64_t key, const TokenGrid& grid) const;
};

// One batch row of a joint call cut by its layout, each [1, rows, H, hd], detached.
struct JointParts {
  Tensor video_q, text_q;  // text_q: the real text queries; undefined when the queries are video only
  Tensor video_k, video_v;
  Tensor text_k, text_v;  // the real text rows
  Tensor keys_k, keys_v;  // every unmasked key, in the order `keys`
  JointKeyOrder keys;
};

// Row `row` of a Joint call cut into its parts; checks the layout against q and k (video_count
// == grid tokens when `grid` is given) and the key mask against the rule above.
JointParts cut_joint_call(const AttentionCall& call, int64_t row = 0, const TokenGrid* grid = nullptr);

struct JointStats {
  JointParts parts;
  std::vector<HeadStats> video_to_video;
  std::vector<HeadStats> video_to_text;  // empty with fewer than 2 real text keys (entropy needs 2)
  std::vector<HeadStats> text_to_all;    // empty without text queries
  std::vector<double> video_text_mass;   // [H]; empty without real text keys
  std::vector<double> text_text_mass;    // [H]; empty without text queries
};

// The three parts' statistics of batch row 0 of a Joint call whose video rows are the tokens of
// `grid` (video-to-video with locality over it).
JointStats joint_attention_statistics(const AttentionCall& call, const TokenGrid& grid,
                                      const AttentionStatsOptions& options);

// The joint attention sparsified per query over all its unmasked keys: each query keeps the
// kept_keys(keep_fraction, unmasked keys) most probable of them (sparse_attention.h), per batch
// row. [B, Nq, H, hd]; undefined when every unmasked key would be kept (that is the dense output).
Tensor sparse_joint_attention(const AttentionCall& call, double keep_fraction);

}  // namespace vdit
