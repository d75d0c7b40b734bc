#pragma once
// A naive double-precision Llama forward pass over dequantized GGUF weights, one token at a time:
// the reference the backends' logits are measured against (the CPU backend in
// tests/engine/model/tiny_model_test.cpp, the CUDA backend in tests/cuda/backend_test.cpp). Slow
// by design (no batching, no KV layout, nothing shared with the code under test); matrix rows are
// spread over OpenMP threads, which does not change any result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/model/model_weights.h"

namespace pagoda::engine::reference {

struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> w;  // [rows][cols]
  std::vector<double> apply(const std::vector<double>& x) const {
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < cols; ++c) acc += static_cast<double>(w[r * cols + c]) * x[c];
      y[r] = acc;
    }
    return y;
  }
};

inline Matrix dequant(const GgufTensorInfo* t) {
  Matrix m;
  m.cols = t->dims[0];
  m.rows = t->dims.size() > 1 ? t->dims[1] : 1;
  m.w.resize(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) EXPECT_TRUE(tensor_row_to_f32(*t, r, m.w.data() + r * m.cols).ok());
  return m;
}

inline std::vector<double> vec(const GgufTensorInfo* t) {
  auto v = tensor_to_f32(*t);
  EXPECT_TRUE(v.ok()) << v.message();
  return std::vector<double>(v.value().begin(), v.value().end());
}

inline std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& g, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * g[i];
  return y;
}

// RoPE: pair i of each head, (2i, 2i+1) (Interleaved) or (i, i + head_dim/2) (HalfSplit), rotated
// by pos * base^(-2i/head_dim).
inline void rope(std::vector<double>& x, int heads, int hd, int pos, double base, RopeStyle style) {
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      const double a = pos * std::pow(base, -2.0 * i / hd);
      const bool half = style == RopeStyle::HalfSplit;
      double& x0 = x[h * hd + (half ? i : 2 * i)];
      double& x1 = x[h * hd + (half ? i + hd / 2 : 2 * i + 1)];
      const double r0 = x0 * std::cos(a) - x1 * std::sin(a), r1 = x0 * std::sin(a) + x1 * std::cos(a);
      x0 = r0;
      x1 = r1;
    }
  }
}

// `expert_hits` (MoE models): counts, per expert, the tokens (of every layer) routed to it.
inline std::vector<std::vector<double>> reference_logits(const ModelWeights& W, const std::vector<int32_t>& tokens,
                                                         std::vector<int>* expert_hits = nullptr) {
  const ModelConfig& c = W.config;
  const int hd = c.head_dim, nh = c.n_heads, nkv = c.n_kv_heads, group = nh / nkv;
  const Matrix emb = dequant(W.token_embd), out = dequant(W.output);
  struct Layer {
    std::vector<double> attn_norm, ffn_norm;
    Matrix q, k, v, o, gate, up, down;
    std::vector<double> bq, bk, bv, q_norm, k_norm;  // empty where the model has none
    Matrix router;                                    // routed experts (ops.moe), else empty
    std::vector<Matrix> exp_gate, exp_up, exp_down;
  };
  auto opt = [](const GgufTensorInfo* t) { return t ? vec(t) : std::vector<double>(); };
  std::vector<Layer> layers;
  for (const LayerWeights& L : W.layers) {
    auto mat = [](const GgufTensorInfo* t) { return t ? dequant(t) : Matrix(); };
    layers.push_back({vec(L.attn_norm), vec(L.ffn_norm), dequant(L.wq), dequant(L.wk), dequant(L.wv), dequant(L.wo),
                      mat(L.w_gate), mat(L.w_up), mat(L.w_down), opt(L.bq), opt(L.bk), opt(L.bv), opt(L.q_norm),
                      opt(L.k_norm), Matrix(), {}, {}, {}});
    if (!c.ops.moe) continue;
    Layer& R = layers.back();
    R.router = dequant(L.router);
    for (int e = 0; e < c.n_experts; ++e) {
      const GgufTensorInfo g = tensor_slice(*L.exp_gate, e), u = tensor_slice(*L.exp_up, e),
                           d = tensor_slice(*L.exp_down, e);
      R.exp_gate.push_back(dequant(&g));
      R.exp_up.push_back(dequant(&u));
      R.exp_down.push_back(dequant(&d));
    }
  }
  auto add = [](std::vector<double>& x, const std::vector<double>& b) {
    for (size_t i = 0; i < b.size(); ++i) x[i] += b[i];
  };
  // Each head of x normalized on its own (qwen3's Q/K norm).
  auto norm_heads = [&](std::vector<double>& x, const std::vector<double>& g) {
    if (g.empty()) return;
    for (size_t h = 0; h * hd < x.size(); ++h) {
      const std::vector<double> head(x.begin() + h * hd, x.begin() + (h + 1) * hd);
      const std::vector<double> n = rms_norm(head, g, c.rms_eps);
      std::copy(n.begin(), n.end(), x.begin() + h * hd);
    }
  };
  const std::vector<double> out_norm = vec(W.output_norm);
  std::vector<std::vector<std::vector<double>>> kcache(layers.size()), vcache(layers.size());
  std::vector<std::vector<double>> logits;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    std::vector<double> x(emb.w.begin() + tokens[pos] * emb.cols, emb.w.begin() + (tokens[pos] + 1) * emb.cols);
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      const std::vector<double> h = rms_norm(x, L.attn_norm, c.rms_eps);
      std::vector<double> q = L.q.apply(h), k = L.k.apply(h), v = L.v.apply(h);
      add(q, L.bq);
      add(k, L.bk);
      add(v, L.bv);
      norm_heads(q, L.q_norm);
      norm_heads(k, L.k_norm);
      rope(q, nh, hd, static_cast<int>(pos), c.rope_theta, c.ops.rope);
      rope(k, nkv, hd, static_cast<int>(pos), c.rope_theta, c.ops.rope);
      kcache[l].push_back(k);
      vcache[l].push_back(v);
      std::vector<double> attn(static_cast<size_t>(nh * hd), 0.0);
      for (int head = 0; head < nh; ++head) {
        const int kvh = head / group;
        std::vector<double> s(pos + 1);
        double mx = -1e300;
        for (size_t j = 0; j <= pos; ++j) {
          double d = 0.0;
          for (int i = 0; i < hd; ++i) d += q[head * hd + i] * kcache[l][j][kvh * hd + i];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t j = 0; j <= pos; ++j) {
          for (int i = 0; i < hd; ++i) attn[head * hd + i] += s[j] / sum * vcache[l][j][kvh * hd + i];
        }
      }
      const std::vector<double> o = L.o.apply(attn);
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
      const std::vector<double> h2 = rms_norm(x, L.ffn_norm, c.rms_eps);
      auto swiglu_ffn = [&](const Matrix& gate, const Matrix& up, const Matrix& down) {
        const std::vector<double> g = gate.apply(h2), u = up.apply(h2);
        std::vector<double> a(g.size());
        for (size_t i = 0; i < g.size(); ++i) a[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
        return down.apply(a);
      };
      if (!c.ops.moe) {
        const std::vector<double> dn = swiglu_ffn(L.gate, L.up, L.down);
        for (size_t i = 0; i < x.size(); ++i) x[i] += dn[i];
        continue;
      }
      // Routed experts: softmax over the router, the k most probable, their probabilities renormalized.
      std::vector<double> p = L.router.apply(h2);
      const double pmax = *std::max_element(p.begin(), p.end());
      for (double& v : p) v = std::exp(v - pmax);  // unnormalized: the renormalization below cancels the sum
      std::vector<int> order(p.size());
      for (size_t e = 0; e < p.size(); ++e) order[e] = static_cast<int>(e);
      std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double chosen = 0.0;
      for (int k = 0; k < c.n_experts_used; ++k) chosen += p[order[k]];
      for (int k = 0; k < c.n_experts_used; ++k) {
        const int e = order[k];
        if (expert_hits) {
          expert_hits->resize(static_cast<size_t>(c.n_experts));
          ++(*expert_hits)[static_cast<size_t>(e)];
        }
        const std::vector<double> dn = swiglu_ffn(L.exp_gate[e], L.exp_up[e], L.exp_down[e]);
        for (size_t i = 0; i < x.size(); ++i) x[i] += p[e] / chosen * dn[i];
      }
    }
    logits.push_back(out.apply(rms_norm(x, out_norm, c.rms_eps)));
  }
  return logits;
}

}  // namespace pagoda::engine::reference
