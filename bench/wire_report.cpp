#include "bench/wire_report.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace pagoda::bench {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double median(std::vector<double> v) { return v.empty() ? kNaN : percentile(std::move(v), 50); }

std::string ms(double s) { return std::isfinite(s) ? fmt::format("{:.1f}", s * 1e3) : std::string("-"); }
std::string num(double v, int decimals = 1) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string("-");
}
nlohmann::json finite(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

nlohmann::json latency_json(const LatencySummary& l) {
  return {{"p50_s", finite(l.p50)},
          {"p90_s", finite(l.p90)},
          {"p99_s", finite(l.p99)},
          {"mean_s", finite(l.mean)},
          {"n", l.n}};
}

std::string latency_line(const char* name, const LatencySummary& l) {
  return fmt::format("    {:<5} ms  p50 {:>8}  p90 {:>8}  p99 {:>8}  mean {:>8}  (n {})\n", name, ms(l.p50), ms(l.p90),
                     ms(l.p99), ms(l.mean), l.n);
}

nlohmann::json sample_json(const RequestSample& s, const LoadRequest& r) {
  nlohmann::json j = {{"at_s", r.at_s},
                      {"max_tokens", r.max_tokens},
                      {"ok", s.ok},
                      {"submit_s", s.submit_s},
                      {"end_s", s.end_s},
                      {"prompt_tokens", s.prompt_tokens},
                      {"output_tokens", s.output_tokens},
                      {"chunks", s.token_times_s.size()}};
  if (s.ok && !s.token_times_s.empty()) j["ttft_s"] = s.first_token_s - s.submit_s;
  if (s.ok && s.output_tokens >= 2) j["tpot_s"] = (s.end_s - s.first_token_s) / (s.output_tokens - 1);
  if (s.ok) {
    std::vector<double> itl;
    for (size_t i = 1; i < s.token_times_s.size(); ++i) itl.push_back(s.token_times_s[i] - s.token_times_s[i - 1]);
    j["itl_s"] = itl;
  }
  if (!s.ok) j["error"] = s.error;
  return j;
}

}  // namespace

PointFigures point_figures(const std::vector<RequestSample>& samples) {
  PointFigures f;
  std::vector<double> prefill, decode;
  double first = std::numeric_limits<double>::infinity(), last = -std::numeric_limits<double>::infinity();
  for (const RequestSample& s : samples) {
    if (!s.ok) continue;
    f.prompt_tokens += s.prompt_tokens;
    f.output_tokens += s.output_tokens;
    first = std::min(first, s.submit_s);
    last = std::max(last, s.end_s);
    const double ttft = s.first_token_s - s.submit_s;
    if (!s.token_times_s.empty() && ttft > 0) prefill.push_back(s.prompt_tokens / ttft);
    const double gen = s.end_s - s.first_token_s;
    if (s.output_tokens >= 2 && gen > 0) decode.push_back((s.output_tokens - 1) / gen);
  }
  f.prefill_tok_s = median(std::move(prefill));
  f.decode_tok_s = median(std::move(decode));
  f.wall_s = last > first ? last - first : kNaN;
  return f;
}

std::string wire_run_text(const WireRun& run) {
  std::string t =
      fmt::format("{} against {} ({}): {}\n", run.workload.name, run.server, run.target, run.workload.description);
  for (const PointResult& p : run.points) {
    const RunSummary& s = p.summary;
    t += fmt::format("  {}: {} requests, {} errors\n", p.label, s.requests, s.errors);
    t += latency_line("TTFT", s.ttft);
    t += latency_line("TPOT", s.tpot);
    t += latency_line("ITL", s.itl);
    t += latency_line("e2e", s.e2e);
    t += fmt::format(
        "    output {} tok/s, {} req/s, goodput {} req/s (SLO TTFT <= {:g} ms, TPOT <= {:g} ms); per request: prefill "
        "{} "
        "tok/s, decode {} tok/s; wall {} s\n",
        num(s.output_tok_s), num(s.request_s, 3), num(s.goodput_request_s, 3), run.slo.max_ttft_s * 1e3,
        run.slo.max_tpot_s * 1e3, num(p.figures.prefill_tok_s), num(p.figures.decode_tok_s), num(p.figures.wall_s, 2));
  }
  if (run.has_roofline) {
    const Roofline& r = run.roofline;
    const double decode = run.points.empty() ? kNaN : run.points.front().figures.decode_tok_s;
    t += fmt::format(
        "  roofline: read bandwidth {:.1f} GB/s / {:.1f} MB per decode step = {:.0f} tok/s; decode at {}% of it\n",
        r.bandwidth_bytes_s / 1e9, r.bytes_per_token / 1e6, r.tok_s, num(100 * decode / r.tok_s, 0));
  }
  return t;
}

nlohmann::json wire_run_json(const WireRun& run) {
  nlohmann::json points = nlohmann::json::array();
  for (size_t k = 0; k < run.points.size(); ++k) {
    const PointResult& p = run.points[k];
    const RunSummary& s = p.summary;
    nlohmann::json per = nlohmann::json::array();
    const std::vector<LoadRequest>& reqs = run.workload.points[k].requests;
    for (size_t i = 0; i < p.samples.size() && i < reqs.size(); ++i) per.push_back(sample_json(p.samples[i], reqs[i]));
    points.push_back({{"label", p.label},
                      {"rate", p.rate},
                      {"concurrency", p.concurrency},
                      {"summary",
                       {{"ttft", latency_json(s.ttft)},
                        {"tpot", latency_json(s.tpot)},
                        {"itl", latency_json(s.itl)},
                        {"e2e", latency_json(s.e2e)},
                        {"output_tok_s", finite(s.output_tok_s)},
                        {"request_s", finite(s.request_s)},
                        {"goodput_request_s", finite(s.goodput_request_s)},
                        {"requests", s.requests},
                        {"errors", s.errors}}},
                      {"figures",
                       {{"prefill_tok_s", finite(p.figures.prefill_tok_s)},
                        {"decode_tok_s", finite(p.figures.decode_tok_s)},
                        {"wall_s", finite(p.figures.wall_s)},
                        {"prompt_tokens", p.figures.prompt_tokens},
                        {"output_tokens", p.figures.output_tokens}}},
                      {"per_request", per}});
  }
  nlohmann::json j = {{"workload", run.workload.name},
                      {"description", run.workload.description},
                      {"server", run.server},
                      {"target", run.target},
                      {"slo", {{"ttft_ms", run.slo.max_ttft_s * 1e3}, {"tpot_ms", run.slo.max_tpot_s * 1e3}}},
                      {"points", points}};
  if (!run.context.is_null()) j["context"] = run.context;
  if (run.has_roofline) {
    j["roofline"] = {{"read_bandwidth_gb_s", run.roofline.bandwidth_bytes_s / 1e9},
                     {"bytes_per_token", run.roofline.bytes_per_token},
                     {"tok_s", run.roofline.tok_s}};
  }
  return j;
}

std::string wire_run_markdown(const WireRun& run) {
  std::string t = fmt::format("**{}** against {} ({}): {}\n\n", run.workload.name, run.server, run.target,
                              run.workload.description);
  t += "| point | ok/requests | TTFT p50 / p99 ms | TPOT p50 / p99 ms | ITL p50 / p99 ms | output tok/s | req/s | "
       "goodput req/s | prefill tok/s | decode tok/s | wall s |\n"
       "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const PointResult& p : run.points) {
    const RunSummary& s = p.summary;
    t +=
        fmt::format("| {} | {}/{} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} |\n", p.label,
                    s.requests - s.errors, s.requests, ms(s.ttft.p50), ms(s.ttft.p99), ms(s.tpot.p50), ms(s.tpot.p99),
                    ms(s.itl.p50), ms(s.itl.p99), num(s.output_tok_s), num(s.request_s, 3), num(s.goodput_request_s, 3),
                    num(p.figures.prefill_tok_s), num(p.figures.decode_tok_s), num(p.figures.wall_s, 2));
  }
  if (run.has_roofline) {
    const double decode = run.points.empty() ? kNaN : run.points.front().figures.decode_tok_s;
    t += fmt::format(
        "\nRoofline: {:.1f} GB/s read bandwidth / {:.1f} MB per decode step = {:.0f} tok/s; decode at {}%.\n",
        run.roofline.bandwidth_bytes_s / 1e9, run.roofline.bytes_per_token / 1e6, run.roofline.tok_s,
        num(100 * decode / run.roofline.tok_s, 0));
  }
  return t;
}

}  // namespace pagoda::bench
