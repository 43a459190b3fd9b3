#include "diagnostics/html_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vdit {

namespace {

constexpr double kWidth = 640, kHeight = 300, kLeft = 64, kRight = 16, kTop = 16, kBottom = 48;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

bool finite_point(const ChartSeries& s, size_t i) { return std::isfinite(s.x[i]) && std::isfinite(s.y[i]); }

}  // namespace

std::string svg_chart(const Chart& chart) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = 0.0, y1 = -INFINITY;
  for (const ChartSeries& s : chart.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (finite_point(s, i)) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      }
  if (!std::isfinite(x0)) return "";
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y1 = y0 + 1.0;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return kTop + (y1 - y) / (y1 - y0) * plot_h; };

  std::string svg = "<svg width=\"" + coord(kWidth) + "\" height=\"" + coord(kHeight) + "\" viewBox=\"0 0 " +
                    coord(kWidth) + " " + coord(kHeight) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  svg += "<rect x=\"" + coord(kLeft) + "\" y=\"" + coord(kTop) + "\" width=\"" + coord(plot_w) + "\" height=\"" +
         coord(plot_h) + "\" fill=\"none\" stroke=\"#999\"/>\n";
  // Ticks: five on y; on x every integer when asked (at most 40 labels), else five.
  for (int t = 0; t <= 4; ++t) {
    const double y = y0 + (y1 - y0) * t / 4;
    svg += "<text x=\"" + coord(kLeft - 4) + "\" y=\"" + coord(py(y) + 4) + "\" text-anchor=\"end\">" + number(y) + "</text>\n";
  }
  std::vector<double> xticks;
  if (chart.integer_x) {
    const double step = std::max(1.0, std::ceil((x1 - x0) / 40));
    for (double x = std::ceil(x0); x <= x1; x += step) xticks.push_back(x);
  } else {
    for (int t = 0; t <= 4; ++t) xticks.push_back(x0 + (x1 - x0) * t / 4);
  }
  for (double x : xticks)
    svg += "<text x=\"" + coord(px(x)) + "\" y=\"" + coord(kTop + plot_h + 14) + "\" text-anchor=\"middle\">" + number(x) + "</text>\n";
  svg += "<text x=\"" + coord(kLeft + plot_w / 2) + "\" y=\"" + coord(kHeight - 18) + "\" text-anchor=\"middle\">" +
         html_escape(chart.x_label) + "</text>\n";
  svg += "<text transform=\"translate(14," + coord(kTop + plot_h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         html_escape(chart.y_label) + "</text>\n";
  double legend_x = kLeft;
  for (const ChartSeries& s : chart.series) {
    std::string points, markers;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!finite_point(s, i)) continue;
      points += coord(px(s.x[i])) + "," + coord(py(s.y[i])) + " ";
      markers += "<circle cx=\"" + coord(px(s.x[i])) + "\" cy=\"" + coord(py(s.y[i])) + "\" r=\"3\" fill=\"" + s.color + "\"/>";
      if (i < s.labels.size())
        markers += "<text x=\"" + coord(px(s.x[i]) + 5) + "\" y=\"" + coord(py(s.y[i]) - 5) + "\">" + html_escape(s.labels[i]) + "</text>";
    }
    if (s.line) svg += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
    svg += markers + "\n";
    svg += "<rect x=\"" + coord(legend_x) + "\" y=\"" + coord(kHeight - 10) + "\" width=\"10\" height=\"8\" fill=\"" + s.color +
           "\"/><text x=\"" + coord(legend_x + 14) + "\" y=\"" + coord(kHeight - 2) + "\">" + html_escape(s.name) + "</text>\n";
    legend_x += 24 + 6.5 * static_cast<double>(s.name.size());
  }
  return svg + "</svg>\n";
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

}  // namespace vdit
