// Sampling from one row of logits without sorting the vocabulary.
//
// Pipeline (vLLM's order): penalties, logit bias, token mask on a copy (logits_processors.h) -> greedy argmax (temperature 0) -> e_i = exp((z_i - max) / T)
// -> top-k -> top-p -> min-p -> draw from the kept e_i. Probabilities are never normalized: every filter is a
// ratio (top-p compares masses against top_p * kept mass, min-p compares e_i against min_p * e_max, and
// e_max = 1), so one sum at the end is enough.
//
// top-k and top-p are exact without a sort: a histogram of e over its float bits (exponent + 3 mantissa bits,
// 1/8-octave buckets, e in [0, 1] so the bits are monotone in e) gives counts and masses per bucket. Walking
// buckets from the top finds the one bucket where k tokens, or top_p of the mass, is reached; only that
// bucket's members are sorted. The kept set is then "every token in a higher bucket" (a threshold test:
// e_i >= floor of the next bucket) plus an explicit sorted prefix of the boundary bucket.
//
// Measured (SamplerBench in tests/engine/sampler_test.cpp: vocab 49152, normal logits * 3, AVX2 clones, one
// core of the shared 2-core dev container; best of 3 runs, up to ~2x slower under load), per call:
//   greedy 4 us | T=0.8 33 us | min-p 0.05 33 us | top-k 50 67 us | top-p 0.9 70 us
//   top-k 40 + top-p 0.95 + min-p 0.05 + penalties (64 prompt / 64 output ids) 75 us; + logprobs 5: 110 us
// The exp pass and the e-bucket histogram dominate; no sort of the vocabulary happens.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace pagoda::engine {
namespace {

constexpr int32_t kBuckets = 1017;  // bucket(1.0f) = 0x3F800000 >> 20 = 1016
constexpr int32_t kBlock = 1024;    // sampling walks block sums first, then one block

inline int32_t bucket_of(float e) { return static_cast<int32_t>(std::bit_cast<uint32_t>(e) >> 20); }
// Smallest float in bucket b: e >= bucket_floor(b) <=> bucket_of(e) >= b (for e in [0, 1]).
inline float bucket_floor(int32_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 20); }

inline int32_t bits_of(float x) { return std::bit_cast<int32_t>(x); }

// The compares in the hot loops are on integer bits: with GCC's default -ftrapping-math a float compare
// inside a select blocks if-conversion, so the loop would stay scalar (checked with -fopt-info-vec). For
// floats >= 0 the bits order like the values; order_key extends that to any sign (a total order).
inline int32_t order_key(float x) {
  const int32_t b = bits_of(x + 0.0f);  // -0 -> +0, so the two zeros tie
  return b ^ ((b >> 31) & 0x7FFFFFFF);
}

// exp(x) for x <= 0 as plain arithmetic (Cephes expf: range reduction to n*ln2 + r, degree-6 polynomial, 2^n
// from exponent bits), so `omp simd` loops vectorize without libmvec or -ffast-math. ~1 ulp; 0 below -87.3
// (the smallest normal float) and for NaN.
inline float exp_nonpos(float x) {
  constexpr int32_t kLimit = std::bit_cast<int32_t>(87.3f);
  const int32_t mag = bits_of(x) & 0x7FFFFFFF;                // |x|; x <= 0 by construction
  const int32_t keep = -static_cast<int32_t>(mag <= kLimit);  // all ones, or 0 (below -87.3, NaN)
  x = -std::bit_cast<float>(mag < kLimit ? mag : kLimit);
  // Round to nearest with the 1.5 * 2^23 trick (no SSE4.1 roundps needed).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3333452907e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return std::bit_cast<float>(bits_of(e * scale) & keep);
}

// The vocabulary-wide passes are compiled twice and picked at load time (GCC target_clones): AVX2 where the
// CPU has it, the x86-64 baseline otherwise. Same IEEE operations in both (ISO mode: no FMA contraction), so
// the results, and the sampled tokens, are identical on either path.
#define PAGODA_VOCAB_PASS __attribute__((target_clones("avx2", "default")))

PAGODA_VOCAB_PASS float max_of(const float* x, int32_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int32_t i = 0; i < n; ++i) m = m > x[i] ? m : x[i];
  return m;
}

// e[i] = exp((z[i] - m) * invt), the unnormalized probabilities.
PAGODA_VOCAB_PASS void exp_shifted(const float* z, float* e, int32_t n, float m, float invt) {
#pragma omp simd
  for (int32_t i = 0; i < n; ++i) e[i] = exp_nonpos((z[i] - m) * invt);
}

// Sum of exp(x[i] - m) (the log-softmax denominator).
PAGODA_VOCAB_PASS float sum_exp(const float* x, int32_t n, float m) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int32_t i = 0; i < n; ++i) s += exp_nonpos(x[i] - m);
  return s;
}

// Sum of the e[i] >= threshold (e >= 0, so comparing bits compares values).
PAGODA_VOCAB_PASS float sum_at_least(const float* e, int32_t n, int32_t threshold_bits) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int32_t i = 0; i < n; ++i) {
    const int32_t b = bits_of(e[i]);
    s += std::bit_cast<float>(b & -static_cast<int32_t>(b >= threshold_bits));
  }
  return s;
}

// z before w: larger value first, then lower id (the order every truncation uses).
struct ByValueThenId {
  bool operator()(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) const {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
};

// A uniform double in [0, 1) from 53 bits: defined by the generator alone (std::uniform_real_distribution is
// implementation-defined), so seeded runs reproduce across standard libraries.
double uniform01(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }

}  // namespace

PAGODA_VOCAB_PASS int32_t argmax(std::span<const float> logits) {
  // One pass, 16 independent lanes (vectorizes into compare + blend on order keys); each lane keeps its first
  // maximum, and the merge takes the lowest index among lanes that hold the overall maximum.
  constexpr int32_t L = 16;
  const float* x = logits.data();
  const int32_t n = static_cast<int32_t>(logits.size());
  int32_t best[L], idx[L];
  for (int32_t j = 0; j < L; ++j) {
    best[j] = std::numeric_limits<int32_t>::min();
    idx[j] = -1;
  }
  int32_t i = 0;
  for (; i + L <= n; i += L) {
#pragma omp simd
    for (int32_t j = 0; j < L; ++j) {
      const int32_t k = order_key(x[i + j]);
      const bool gt = k > best[j];
      best[j] = gt ? k : best[j];
      idx[j] = gt ? i + j : idx[j];
    }
  }
  for (int32_t j = 0; i + j < n; ++j) {
    const int32_t k = order_key(x[i + j]);
    if (k > best[j]) {
      best[j] = k;
      idx[j] = i + j;
    }
  }
  int32_t out = -1, m = 0;
  for (int32_t j = 0; j < L; ++j) {
    if (idx[j] < 0) continue;
    if (out < 0 || best[j] > m || (best[j] == m && idx[j] < out)) {
      m = best[j];
      out = idx[j];
    }
  }
  return out < 0 ? 0 : out;  // empty
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt)
    : p_(params), rng_(params.seed), stages_(make_logits_processors(params, prompt)) {}

void Sampler::accept(int32_t token) {
  for (auto& stage : stages_) stage->accept(token);
}

const float* Sampler::processed(std::span<const float> logits, std::span<const uint32_t> allowed) {
  const bool any = !allowed.empty() || std::any_of(stages_.begin(), stages_.end(), [](const auto& s) { return s->active(); });
  if (!any) return logits.data();
  z_.assign(logits.begin(), logits.end());
  for (auto& stage : stages_) {
    if (stage->active()) stage->apply(z_);
  }
  if (!allowed.empty()) apply_token_mask(z_, allowed);
  return z_.data();
}

// Sorts part_[from, ..) just far enough to find where the running mass (cum, in e units) reaches target;
// truncates part_ there and returns true, or returns false with part_ fully sorted if it never does. Grows
// the sorted prefix geometrically (nth_element + sort of a chunk), so a large boundary bucket is not sorted
// past the cut.
bool Sampler::cut_sorted_by_mass(double cum, double target) {
  const size_t size = part_.size();
  size_t done = 0, step = 64;
  while (done < size) {
    const size_t end = std::min(size, done + step);
    if (end < size) std::nth_element(part_.begin() + done, part_.begin() + end, part_.end(), ByValueThenId());
    std::sort(part_.begin() + done, part_.begin() + end, ByValueThenId());
    for (size_t i = done; i < end; ++i) {
      cum += e_[part_[i].second];
      if (cum >= target) {
        part_.resize(i + 1);
        return true;
      }
    }
    done = end;
    step *= 2;
  }
  return false;
}

void Sampler::collect_bucket(const float* z, int32_t n, int32_t b) {
  part_.clear();
  const float* e = e_.data();
  constexpr int32_t C = 32;  // a vectorized "any member here?" test per chunk; members are usually few
  for (int32_t i0 = 0; i0 < n; i0 += C) {
    const int32_t i1 = std::min(n, i0 + C);
    int32_t any = 0;
#pragma omp simd reduction(| : any)
    for (int32_t i = i0; i < i1; ++i) any |= static_cast<int32_t>(bucket_of(e[i]) == b);
    if (!any) continue;
    for (int32_t i = i0; i < i1; ++i) {
      if (bucket_of(e[i]) == b) part_.emplace_back(z[i], i);
    }
  }
}

int32_t Sampler::draw(const float* z, int32_t n) {
  const float invt = 1.0f / p_.temperature;
  const float m = max_of(z, n);
  e_.resize(n);
  float* e = e_.data();
  exp_shifted(z, e, n, m, invt);

  // Kept set: { i : bucket(e_i) > cut } u part_, intersected with e_i >= min_p at the end.
  int32_t cut = -1;
  part_.clear();
  const bool top_k = p_.top_k > 0 && p_.top_k < n;
  const bool top_p = p_.top_p < 1.0f;
  if (top_k || top_p) {
    hist_count_.assign(kBuckets, 0);
    hist_mass_.assign(kBuckets, 0.0);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t b = bucket_of(e[i]);
      ++hist_count_[b];
      hist_mass_[b] += e[i];
    }
    double kept_mass = 0;  // mass of the kept set after top-k
    if (top_k) {
      int32_t above = 0;
      int32_t b = kBuckets - 1;
      for (; b > 0 && above + hist_count_[b] < p_.top_k; --b) {
        above += hist_count_[b];
        kept_mass += hist_mass_[b];
      }
      collect_bucket(z, n, b);
      const size_t need = static_cast<size_t>(p_.top_k - above);
      std::partial_sort(part_.begin(), part_.begin() + std::min(need, part_.size()), part_.end(),
                        ByValueThenId());
      part_.resize(std::min(need, part_.size()));
      for (const auto& [v, id] : part_) kept_mass += e[id];
      cut = b;
    } else {
      for (int32_t b = 0; b < kBuckets; ++b) kept_mass += hist_mass_[b];
    }
    if (top_p) {
      const double target = static_cast<double>(p_.top_p) * kept_mass;
      double cum = 0;
      bool crossed = false;
      for (int32_t b = kBuckets - 1; b > cut; --b) {
        if (hist_count_[b] > 0 && cum + hist_mass_[b] >= target) {
          collect_bucket(z, n, b);
          cut_sorted_by_mass(cum, target);  // rounding may leave it uncut: then the whole bucket stays
          cut = b;
          crossed = true;
          break;
        }
        cum += hist_mass_[b];
      }
      if (!crossed) cut_sorted_by_mass(cum, target);  // part_ is top-k's sorted prefix
    }
  }

  // Sum of the kept e_i, per block so the walk below touches one block of the vocabulary.
  const float min_e = p_.min_p > 0.0f ? p_.min_p : 0.0f;
  const float full = std::max(bucket_floor(cut + 1), min_e);
  const int32_t full_bits = bits_of(full);  // e >= 0, so comparing bits compares values
  const int32_t blocks = (n + kBlock - 1) / kBlock;
  block_sum_.resize(blocks);
  double total = 0;
  for (int32_t k = 0; k < blocks; ++k) {
    const int32_t lo = k * kBlock, hi = std::min(n, lo + kBlock);
    const float s = sum_at_least(e + lo, hi - lo, full_bits);
    block_sum_[k] = s;
    total += s;
  }
  for (const auto& [v, id] : part_) total += e[id] >= min_e ? e[id] : 0.0f;

  const double r = uniform01(rng_) * total;
  double acc = 0;
  int32_t last = -1;  // last kept token with mass, the answer if rounding runs past the end
  int32_t k = 0;
  for (; k < blocks && acc + block_sum_[k] <= r; ++k) acc += block_sum_[k];
  for (int32_t i = k * kBlock; i < n; ++i) {
    if (e[i] >= full && e[i] > 0.0f) {
      acc += e[i];
      last = i;
      if (r < acc) return i;
    }
  }
  for (const auto& [v, id] : part_) {
    if (e[id] >= min_e && e[id] > 0.0f) {
      acc += e[id];
      last = id;
      if (r < acc) return id;
    }
  }
  return last >= 0 ? last : argmax({z, static_cast<size_t>(n)});
}

void Sampler::fill_logprobs(std::span<const float> logits, SampleResult& r) {
  const float* x = logits.data();
  const int32_t n = static_cast<int32_t>(logits.size());
  const float m = max_of(x, n);
  const float s = sum_exp(x, n, m);
  const float lse = m + std::log(s);
  r.logprob = x[r.token] - lse;
  const int32_t want = std::min(p_.logprobs, n);
  if (want <= 0) return;
  // Top-N by a scan with a small sorted array: most logits fail the compare with the current N-th.
  top_.clear();
  float floor = -std::numeric_limits<float>::infinity();  // the current N-th logit once N are held
  constexpr int32_t C = 64;  // chunks whose (vectorized) max cannot enter the top N are skipped
  for (int32_t i0 = 0; i0 < n; i0 += C) {
    const int32_t i1 = std::min(n, i0 + C);
    if (static_cast<int32_t>(top_.size()) == want && !(max_of(x + i0, i1 - i0) > floor)) continue;
    for (int32_t i = i0; i < i1; ++i) {
      if (static_cast<int32_t>(top_.size()) == want && !(x[i] > floor)) continue;
      auto at =
          std::upper_bound(top_.begin(), top_.end(), std::pair<float, int32_t>{x[i], i}, ByValueThenId());
      top_.insert(at, {x[i], i});
      if (static_cast<int32_t>(top_.size()) > want) top_.pop_back();
      floor = top_.back().first;
    }
  }
  r.top.resize(top_.size());
  for (size_t i = 0; i < top_.size(); ++i) r.top[i] = {top_[i].second, top_[i].first - lse};
}

SampleResult Sampler::sample(std::span<const float> logits, std::span<const uint32_t> allowed) {
  SampleResult r;
  if (logits.empty()) return r;
  const float* z = processed(logits, allowed);
  const int32_t n = static_cast<int32_t>(logits.size());
  if (p_.temperature <= 0.0f || p_.top_k == 1) {
    r.token = argmax({z, static_cast<size_t>(n)});
  } else {
    r.token = draw(z, n);
  }
  if (p_.logprobs >= 0) fill_logprobs(logits, r);
  return r;
}

}  // namespace pagoda::engine
