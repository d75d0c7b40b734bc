#include "bench/summary_stats.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>

namespace pagoda::bench {

std::string Summary::format(int decimals) const {
  return fmt::format("{:.{}f} ({:.{}f}-{:.{}f})", median, decimals, min, decimals, max, decimals);
}

Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

}  // namespace pagoda::bench
