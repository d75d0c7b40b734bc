#include "bench/wire_workloads.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "bench/arrivals.h"

namespace pagoda::bench {

const std::vector<std::string>& wire_workload_names() {
  static const std::vector<std::string> names = {"single",      "mixed-prefill", "chat",
                                                 "concurrency", "shared-prefix", "copy"};
  return names;
}

namespace {

int32_t or_default(int32_t v, int32_t fallback) { return v > 0 ? v : fallback; }

LoadRequest fixed(std::string prompt, int32_t max_tokens) {
  LoadRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

// `n` requests with prompts of `prompt_tokens` random windows, sent one after another.
WirePoint sequential(const PromptCorpus& corpus, std::mt19937_64& rng, int32_t n, int32_t prompt_tokens,
                     int32_t max_tokens, std::string label) {
  WirePoint p{std::move(label), 0, 1, {}};
  for (int32_t i = 0; i < n; ++i) p.requests.push_back(fixed(corpus.random_text(prompt_tokens, rng), max_tokens));
  return p;
}

WireWorkload single(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const int32_t prompt = or_default(o.prompt_tokens, 256), out = or_default(o.max_tokens, 256);
  const int32_t n = or_default(o.requests, 3);
  return {"single",
          fmt::format("1 stream, {}-token prompts, {} output tokens, {} requests one after another", prompt, out, n),
          {sequential(corpus, rng, n, prompt, out, "1 stream")}};
}

WireWorkload mixed_prefill(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const int32_t n = or_default(o.requests, 64), out = or_default(o.max_tokens, 1);
  std::uniform_int_distribution<int32_t> len(8, 1024);
  WirePoint p{fmt::format("{} prompts at once", n), 0, n, {}};
  for (int32_t i = 0; i < n; ++i) p.requests.push_back(fixed(corpus.random_text(len(rng), rng), out));
  return {"mixed-prefill",
          fmt::format("{} prompts of uniform length in 8..1024 tokens, max_tokens {}, all sent at once", n, out),
          {std::move(p)}};
}

WireWorkload chat(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const std::vector<double> rates = o.rates.empty() ? std::vector<double>{0.5, 1, 2} : o.rates;
  const int32_t n = or_default(o.requests, 32), out = or_default(o.max_tokens, 128);
  const double median = or_default(o.prompt_tokens, 200);
  WireWorkload w{"chat",
                 fmt::format("{} arrivals, {} requests per rate, prompt lengths log-normal (median {}, sigma 0.6, "
                             "clamped 16..{} tokens), {} output tokens",
                             o.constant_arrivals ? "evenly spaced" : "Poisson", n, median,
                             std::max<int32_t>(1024, static_cast<int32_t>(2 * median)), out),
                 {}};
  for (size_t k = 0; k < rates.size(); ++k) {
    const uint64_t seed = o.seed * 1000 + k;
    const std::vector<double> at = o.constant_arrivals ? constant_arrivals(rates[k], static_cast<size_t>(n))
                                                       : poisson_arrivals(rates[k], static_cast<size_t>(n), seed);
    const int32_t longest = std::max<int32_t>(1024, static_cast<int32_t>(2 * median));
    const std::vector<int32_t> lengths =
        lognormal_lengths(static_cast<size_t>(n), median, 0.6, 16, longest, seed + 500);
    WirePoint p{fmt::format("rate {:g} req/s", rates[k]), rates[k], 1 << 16, {}};
    for (int32_t i = 0; i < n; ++i) {
      p.requests.push_back(fixed(corpus.random_text(lengths[static_cast<size_t>(i)], rng), out));
      p.requests.back().at_s = at[static_cast<size_t>(i)];
    }
    w.points.push_back(std::move(p));
  }
  return w;
}

WireWorkload concurrency(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const std::vector<int32_t> levels = o.levels.empty() ? std::vector<int32_t>{1, 4, 16, 64} : o.levels;
  const int32_t prompt = or_default(o.prompt_tokens, 128), out = or_default(o.max_tokens, 128);
  const int32_t min_requests = or_default(o.requests, 4);
  WireWorkload w{"concurrency",
                 fmt::format("closed loop of N streams, max(N, {}) requests per level, {}-token prompts, {} output "
                             "tokens",
                             min_requests, prompt, out),
                 {}};
  for (int32_t level : levels) {
    WirePoint p = sequential(corpus, rng, std::max(level, min_requests), prompt, out,
                             fmt::format("{} stream{}", level, level == 1 ? "" : "s"));
    p.concurrency = level;
    w.points.push_back(std::move(p));
  }
  return w;
}

WireWorkload sessions(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const int32_t s = o.sessions, n = or_default(o.requests, 4 * s), out = or_default(o.max_tokens, 16);
  const int32_t prefix_len = or_default(o.prompt_tokens, 512), user_len = 32;
  std::vector<std::string> prefixes;
  for (int32_t k = 0; k < s; ++k) prefixes.push_back(corpus.random_text(prefix_len, rng));
  std::vector<int32_t> order;  // every session's turns, shuffled
  for (int32_t i = 0; i < n; ++i) order.push_back(i % s);
  std::shuffle(order.begin(), order.end(), rng);
  WirePoint p{fmt::format("{} sessions", s), 0, 1, {}};
  for (int32_t k : order) {
    p.requests.push_back(fixed(prefixes[static_cast<size_t>(k)] + "\n\n" + corpus.random_text(user_len, rng), out));
    p.requests.back().session = fmt::format("session-{}", k);
  }
  return {"shared-prefix",
          fmt::format("{} requests one after another, turns of {} conversations in a random order: each a {}-token "
                      "prefix of its own and a {}-token user turn, {} output tokens",
                      n, s, prefix_len, user_len, out),
          {std::move(p)}};
}

WireWorkload shared_prefix(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  if (o.sessions > 0) return sessions(corpus, o, rng);
  const int32_t n = or_default(o.requests, 16), out = or_default(o.max_tokens, 16);
  const int32_t prefix_len = or_default(o.prompt_tokens, 512), user_len = 32;
  const std::string prefix = corpus.random_text(prefix_len, rng);
  WirePoint shared{"shared prefix", 0, 1, {}};
  WirePoint distinct{"no shared prefix", 0, 1, {}};
  for (int32_t i = 0; i < n; ++i) {
    shared.requests.push_back(fixed(prefix + "\n\n" + corpus.random_text(user_len, rng), out));
    distinct.requests.push_back(
        fixed(corpus.random_text(prefix_len, rng) + "\n\n" + corpus.random_text(user_len, rng), out));
  }
  return {"shared-prefix",
          fmt::format("{} requests one after another: a {}-token system prompt (shared, or distinct per request) and "
                      "a {}-token user turn, {} output tokens",
                      n, prefix_len, user_len, out),
          {std::move(shared), std::move(distinct)}};
}

WireWorkload copy(const PromptCorpus& corpus, const WireOptions& o, std::mt19937_64& rng) {
  const int32_t n = or_default(o.requests, 4), out = or_default(o.max_tokens, 128);
  const int32_t passage = or_default(o.prompt_tokens, 128);
  WirePoint p{"1 stream", 0, 1, {}};
  for (int32_t i = 0; i < n; ++i) {
    const std::string text = corpus.random_text(passage, rng);
    p.requests.push_back(fixed(
        "Repeat the following passage word for word.\n\nPassage: " + text + "\n\nThe passage, repeated word for word: ",
        out));
  }
  return {"copy",
          fmt::format("{} requests one after another asking to repeat a {}-token passage, {} output tokens", n, passage,
                      out),
          {std::move(p)}};
}

}  // namespace

Result<WireWorkload> make_wire_workload(const std::string& name, const PromptCorpus& corpus, const WireOptions& o) {
  if (o.requests < 0 || o.max_tokens < 0 || o.prompt_tokens < 0 || o.sessions < 0)
    return Status::error("requests, max_tokens, prompt_tokens and sessions must not be negative");
  if (o.sessions > 0 && name != "shared-prefix") return Status::error("sessions apply to shared-prefix only");
  for (int32_t l : o.levels)
    if (l < 1) return Status::error(fmt::format("concurrency level {} is not positive", l));
  for (double r : o.rates)
    if (!(r > 0) || !std::isfinite(r)) return Status::error(fmt::format("rate {} is not a positive number", r));
  std::mt19937_64 rng(o.seed);
  if (name == "single") return single(corpus, o, rng);
  if (name == "mixed-prefill") return mixed_prefill(corpus, o, rng);
  if (name == "chat") return chat(corpus, o, rng);
  if (name == "concurrency") return concurrency(corpus, o, rng);
  if (name == "shared-prefix") return shared_prefix(corpus, o, rng);
  if (name == "copy") return copy(corpus, o, rng);
  std::string known;
  for (const std::string& n : wire_workload_names()) known += (known.empty() ? "" : ", ") + n;
  return Status::error("unknown workload '" + name + "' (known: " + known + ")");
}

}  // namespace pagoda::bench
