#include "diagnostics/thresholds.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "autograd/check.h"

namespace vdit {

namespace {

// The text of diagnostics/default_checks.json; a test keeps the two equal.
const std::string kDefaultChecks = R"json(
{
  "self_attn": {
    "entropy": {"warn": 0.2, "fail": 0.1, "direction": "min"},
    "sink_mass": {"warn": 0.3, "fail": 0.6, "direction": "max"},
    "top1_over_threshold": {"warn": 0.25, "fail": 0.5, "direction": "max"},
    "sparsify_error": {"warn": 0.2, "fail": 0.5, "direction": "max", "when_keys_for_90_below": 0.1}
  },
  "cross_attn": {
    "entropy": {"warn": 0.1, "fail": 0.05, "direction": "min"},
    "sink_mass": {"warn": 0.5, "fail": 0.8, "direction": "max"},
    "top1_over_threshold": {"warn": 0.5, "fail": 0.8, "direction": "max"}
  }
}
)json";

const char* const kBlockMetric = "sparsify_error";  // judged per timestep, not per head

struct Check {
  std::string kind, metric;
  double warn, fail;
  bool upper;                     // "max": values above the limits are bad
  double when_keys_for_90_below;  // NaN: judged everywhere
};

// One judged number: a head's at a timestep, or the block's (head -1).
struct Sample {
  double value;
  int64_t t, head;
};

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

double number_at(const nlohmann::json& entry, const char* field, const std::string& source, const std::string& key) {
  VDIT_CHECK(entry.contains(field) && entry[field].is_number(),
             source << ": key \"" << key << "." << field << "\" must be a number");
  return entry[field].get<double>();
}

Check parse_check(const std::string& source, const std::string& kind, const std::string& metric,
                  const nlohmann::json& entry) {
  const std::string key = kind + "." + metric;
  const bool block_metric = metric == kBlockMetric;
  if (!block_metric) {
    const auto& names = head_metrics();
    const auto known = std::find_if(names.begin(), names.end(), [&](const HeadMetric& m) { return metric == m.name; });
    VDIT_CHECK(known != names.end(), source << ": key \"" << key << "\" is not a metric (entropy, sink_mass, "
                                            "top1_over_threshold, keys_for_90, keys_for_95, structure_correlation, "
                                            "sparsify_error)");
    VDIT_CHECK(!known->self_only || kind == "self_attn", source << ": key \"" << key << "\": " << metric
                                                                << " is measured for self-attention only");
  }
  VDIT_CHECK(entry.is_object(), source << ": key \"" << key << "\" must be an object with warn, fail and direction");
  for (const auto& [field, value] : entry.items())
    VDIT_CHECK(field == "warn" || field == "fail" || field == "direction" ||
                   (block_metric && field == "when_keys_for_90_below"),
               source << ": key \"" << key << "." << field << "\" is not a known field");
  const nlohmann::json direction = entry.value("direction", nlohmann::json());
  VDIT_CHECK(direction == "max" || direction == "min",
             source << ": key \"" << key << ".direction\" must be \"max\" or \"min\"");
  Check c{kind, metric, number_at(entry, "warn", source, key), number_at(entry, "fail", source, key),
          direction == "max", NAN};
  if (entry.contains("when_keys_for_90_below"))
    c.when_keys_for_90_below = number_at(entry, "when_keys_for_90_below", source, key);
  VDIT_CHECK(c.upper ? c.warn <= c.fail : c.warn >= c.fail,
             source << ": key \"" << key << "\": warn " << c.warn << " must come before fail " << c.fail
                    << " for direction " << direction.get<std::string>());
  return c;
}

std::vector<Check> parse_checks(const nlohmann::json& limits, const std::string& source) {
  VDIT_CHECK(limits.is_object(), source << ": expected an object with keys self_attn, cross_attn and/or text_attn");
  std::vector<Check> checks;
  for (const auto& [kind, metrics] : limits.items()) {
    VDIT_CHECK(kind == "self_attn" || kind == "cross_attn" || kind == "text_attn",
               source << ": key \"" << kind << "\" is not an attention kind (self_attn, cross_attn, text_attn)");
    VDIT_CHECK(metrics.is_object(), source << ": key \"" << kind << "\" must be an object of metrics");
    for (const auto& [metric, entry] : metrics.items()) checks.push_back(parse_check(source, kind, metric, entry));
  }
  return checks;
}

// NaN (not measured) compares false either way, so it passes.
Verdict judge(double value, const Check& c) {
  const auto beyond = [&](double limit) { return c.upper ? value > limit : value < limit; };
  return beyond(c.fail) ? Verdict::Fail : beyond(c.warn) ? Verdict::Warn : Verdict::Pass;
}

// The numbers of block b that check c judges.
std::vector<Sample> samples_of(const DiagnosticsReport& r, const AttentionKindReport& k, const Check& c, int64_t b) {
  std::vector<Sample> samples;
  if (c.metric == kBlockMetric) {
    for (int64_t t = 0; t < r.timesteps() && !k.sparsify_error.empty(); ++t) {
      double keys = 0.0;
      for (int64_t h = 0; h < r.heads; ++h) keys += k.keys_for_90[r.index(t, b, h)] / static_cast<double>(r.heads);
      if (std::isnan(c.when_keys_for_90_below) || keys < c.when_keys_for_90_below)
        samples.push_back({k.sparsify_error[static_cast<size_t>(t * r.blocks + b)], t, -1});
    }
    return samples;
  }
  const std::vector<double>& values = k.*head_metric(c.metric).values;
  for (int64_t t = 0; t < r.timesteps() && !values.empty(); ++t)
    for (int64_t h = 0; h < r.heads; ++h) samples.push_back({values[r.index(t, b, h)], t, h});
  return samples;
}

struct Finding {
  Verdict verdict = Verdict::Pass;
  std::string reason;  // empty when every sample passes
};

// The worst of `samples` against c, explained: "self_attn.sink_mass 0.9 above the fail limit 0.6
// at head 1, sigma 0.5 (timestep 1); 2 of 6 head-timesteps beyond warn 0.3".
Finding judge_samples(const DiagnosticsReport& r, const Check& c, const std::vector<Sample>& samples) {
  const Sample* worst = nullptr;
  int64_t beyond_warn = 0;
  for (const Sample& s : samples) {
    if (judge(s.value, c) == Verdict::Pass) continue;
    ++beyond_warn;
    if (!worst || (c.upper ? s.value > worst->value : s.value < worst->value)) worst = &s;
  }
  if (!worst) return {};
  const Verdict v = judge(worst->value, c);
  std::ostringstream out;
  out << c.kind << "." << c.metric << " " << number(worst->value) << (c.upper ? " above" : " below") << " the "
      << to_string(v) << " limit " << number(v == Verdict::Fail ? c.fail : c.warn) << " at ";
  if (worst->head >= 0) out << "head " << worst->head << ", ";
  out << "sigma " << number(r.sigmas[static_cast<size_t>(worst->t)]) << " (timestep " << worst->t << "); "
      << beyond_warn << " of " << samples.size() << (worst->head >= 0 ? " head-timesteps" : " timesteps")
      << " beyond warn " << number(c.warn);
  if (!std::isnan(c.when_keys_for_90_below))
    out << ", judged where the block looks sparse (keys_for_90 below " << number(c.when_keys_for_90_below) << ")";
  return {v, out.str()};
}

}  // namespace

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::Pass: return "pass";
    case Verdict::Warn: return "warn";
    case Verdict::Fail: return "fail";
  }
  VDIT_FAIL("unknown verdict " << static_cast<int>(v));
}

const std::string& default_checks_json() { return kDefaultChecks; }

void validate_thresholds(const nlohmann::json& limits, const std::string& source) { parse_checks(limits, source); }

Thresholds Thresholds::defaults() {
  Thresholds t{nlohmann::json::parse(kDefaultChecks)};
  validate_thresholds(t.limits, "built-in diagnostic checks");
  return t;
}

Thresholds Thresholds::load(const std::string& path) {
  std::ifstream in(path);
  VDIT_CHECK(in, path << ": cannot read thresholds file");
  Thresholds t;
  try {
    t.limits = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    VDIT_FAIL(path << ": not valid JSON (" << e.what() << ")");
  }
  validate_thresholds(t.limits, path);
  return t;
}

std::vector<BlockVerdict> check_thresholds(const DiagnosticsReport& report, const Thresholds& thresholds) {
  check_report_shape(report);
  const std::vector<Check> checks = parse_checks(thresholds.limits, "thresholds");
  std::vector<BlockVerdict> verdicts;
  for (int64_t b = 0; b < report.blocks; ++b) {
    BlockVerdict v{static_cast<int>(b), Verdict::Pass, {}};
    for (const Check& c : checks) {
      const Finding finding = judge_samples(report, c, samples_of(report, kind_report(report, c.kind), c, b));
      if (finding.verdict == Verdict::Pass) continue;
      v.verdict = std::max(v.verdict, finding.verdict);
      v.reasons.push_back(finding.reason);
    }
    verdicts.push_back(std::move(v));
  }
  return verdicts;
}

}  // namespace vdit
