#pragma once
// Median / min / max of repeated measurements (BENCH.md: report the median with its range).
#include <string>
#include <vector>

namespace pagoda::bench {

struct Summary {
  double median = 0, min = 0, max = 0;
  int n = 0;
  std::string format(int decimals = 1) const;  // "123.4 (120.1-125.0)"
};

Summary summarize(std::vector<double> values);

}  // namespace pagoda::bench
