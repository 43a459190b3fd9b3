#pragma once
// report.html: one page tying a diagnosis together — verdicts per block, a heatmap per metric,
// the frame-distance profile and the pooled maps of the worst heads — and, when the diagnosis
// of the starting model is given, the same numbers and pictures before and after side by side.
// Readable offline: inline style, no script, nothing fetched from the network; its pictures are
// PNGs written into the same directory and referenced by relative path, so the directory can be
// copied or archived whole.
#include <string>

#include "diagnostics/diagnostics_report.h"
#include "diagnostics/thresholds.h"

namespace vdit {

// Writes DIR/report.html and the PNGs it shows (those of `before` prefixed "before_").
// `extra_html` (e.g. a training run's loss curve and samples) goes in after the summary table.
void write_report_html(const std::string& dir, const DiagnosticsReport& report, const Thresholds& thresholds,
                       const DiagnosticsReport* before = nullptr, const std::string& extra_html = "");

}  // namespace vdit
