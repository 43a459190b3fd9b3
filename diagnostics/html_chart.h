#pragma once
// What the HTML reports share: a small inline SVG chart of a few series over a
// common x axis, plain markup (no script, nothing fetched), and text made safe for HTML.
#include <string>
#include <vector>

namespace vdit {

struct ChartSeries {
  std::string name;
  std::string color;  // any SVG colour, e.g. "#31688e"
  std::vector<double> x, y;  // equal lengths; points with a non-finite x or y are left out
  bool line = true;  // false: markers only (a scatter)
  std::vector<std::string> labels;  // optional, one per point, written beside its marker
};

struct Chart {
  std::string x_label, y_label;
  std::vector<ChartSeries> series;
  bool integer_x = false;  // x ticks at every integer (block indices)
};

// An <svg> of `chart`: axes scaled to the data (zero included on y), ticks with their values,
// one polyline and markers per series and a legend. Empty when no series has a finite point.
std::string svg_chart(const Chart& chart);

// `text` with &, <, > and " escaped.
std::string html_escape(const std::string& text);

}  // namespace vdit
