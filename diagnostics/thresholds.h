#pragma once
// Pass/warn/fail per block from a diagnosis (issue 5, "Checked at every checkpoint").
//
// A thresholds file (--diagnostic-checks FILE) is JSON: for each kind ("self_attn",
// "cross_attn", "text_attn") a limit per metric,
//   {"self_attn": {"sink_mass": {"warn": 0.3, "fail": 0.6, "direction": "max"}, ...}, ...}
// "direction": "max" means values above the limit are bad, "min" values below it. Metrics are
// those of diagnostics.h5: entropy, sink_mass, top1_over_threshold, keys_for_90, keys_for_95,
// structure_correlation (self_attn only), each judged per head and timestep, and sparsify_error,
// judged per timestep; sparsify_error may carry "when_keys_for_90_below": X, which judges it only
// where the block looks sparse (mean over heads of keys_for_90 below X), because a dense layer
// is expected to change when sparsified and only a sparse-looking one that does is suspect.
// A file replaces the defaults whole: a metric it does not name is not checked.
//
// The shipped defaults (diagnostics/default_checks.json, compiled in; starting points to tune
// on your model, not measured truths):
//   self_attn  entropy < 0.2 warn, < 0.1 fail: a head concentrating on a handful of keys;
//              sink_mass > 0.3 warn, > 0.6 fail: one key takes a third (most) of all mass;
//              top1_over_threshold > 0.25 warn, > 0.5 fail: a quarter (half) of the queries
//              give their best key more than --sink-threshold;
//              sparsify_error > 0.2 warn, > 0.5 fail where keys_for_90 < 0.1: looks sparse
//              (90% of the mass in the top 10% of keys, the --sparse-keep default) yet its
//              output moves when sparsified.
//   cross_attn entropy < 0.1 warn, < 0.05 fail; sink_mass and top1_over_threshold > 0.5 warn,
//              > 0.8 fail: looser than self-attention, since a few text tokens (and padding)
//              legitimately draw much of the mass.
// A joint attention (Mochi, CogVideoX) is judged by the same limits: self_attn holds its
// video-to-video part, cross_attn its video-to-text part, and its sparsify_error (the joint
// attention sparsified) sits under self_attn; text_attn (text-to-all) has no default limits.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diagnostics/diagnostics_report.h"

namespace vdit {

enum class Verdict { Pass, Warn, Fail };  // ordered: a larger verdict is worse

std::string to_string(Verdict v);

// Limits per metric, in the format above.
struct Thresholds {
  nlohmann::json limits;
  static Thresholds defaults();
  // Errors name the file and the key at fault.
  static Thresholds load(const std::string& path);
};

// The compiled-in text of diagnostics/default_checks.json.
const std::string& default_checks_json();

// Throws unless `limits` is in the format above; messages start with `source` (a file name).
void validate_thresholds(const nlohmann::json& limits, const std::string& source);

// Verdict of each block (worst over its heads, timesteps and metrics) and the reasons: one per
// metric beyond its warn limit, naming the worst head and timestep.
struct BlockVerdict {
  int block;
  Verdict verdict;
  std::vector<std::string> reasons;
};
std::vector<BlockVerdict> check_thresholds(const DiagnosticsReport& report, const Thresholds& thresholds);

}  // namespace vdit
