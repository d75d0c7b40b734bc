#include "bench/op_profile_report.h"

#include <spdlog/fmt/fmt.h>

namespace pagoda::bench {

void add_profile(engine::OpProfile& into, const engine::OpProfile& p) {
  if (into.seconds.empty()) {
    into = p;
    return;
  }
  into.steps += p.steps;
  for (size_t k = 0; k < into.seconds.size() && k < p.seconds.size(); ++k) {
    into.seconds[k].second += p.seconds[k].second;
  }
}

double profile_total_s(const engine::OpProfile& p) {
  double total = 0;
  for (const auto& [kind, s] : p.seconds) total += s;
  return total;
}

std::string profile_text(const engine::OpProfile& p) {
  const double total = profile_total_s(p);
  std::string s = fmt::format("{} steps, {:.1f} ms/step:", p.steps, p.steps ? 1e3 * total / p.steps : 0.0);
  for (const auto& [kind, secs] : p.seconds) {
    if (secs > 0) s += fmt::format(" {} {:.1f}%", kind, total > 0 ? 100 * secs / total : 0.0);
  }
  return s;
}

nlohmann::json profile_json(const engine::OpProfile& p) {
  const double total = profile_total_s(p);
  nlohmann::json kinds = nlohmann::json::object();
  for (const auto& [kind, secs] : p.seconds) {
    kinds[kind] = {{"seconds", secs}, {"share", total > 0 ? secs / total : 0.0}};
  }
  return nlohmann::json{{"steps", p.steps}, {"total_seconds", total}, {"kinds", kinds}};
}

}  // namespace pagoda::bench
