#pragma once
// Varlen causal attention over the paged KV cache, one ragged batch at a time: every query token
// attends to its own sequence's keys at positions 0..pos (its block table says where they live).
#include <cstdint>

#include "engine/step_plan.h"

namespace pagoda::engine::cpu {

// KV entries are fp16, as llama.cpp's default cache: half the memory and bandwidth of f32, and the
// same rounding as the reference implementation.
using KvScalar = _Float16;

// One layer's slice of a KV pool. Layout [blocks][2 (K, V)][kv_heads][block_size][head_dim].
struct PagedKvLayer {
  KvScalar* base = nullptr;
  int32_t block_size = 16;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  // The slice is the window pool's (KvCacheShape::num_window_blocks): the plan's window slots and
  // tables address it.
  bool window_pool = false;
  int64_t head_stride() const { return static_cast<int64_t>(block_size) * head_dim; }
  int64_t block_stride() const { return 2 * n_kv_heads * head_stride(); }
  KvScalar* key(int32_t block, int32_t head) const { return base + block * block_stride() + head * head_stride(); }
  KvScalar* value(int32_t block, int32_t head) const {
    return base + block * block_stride() + (n_kv_heads + head) * head_stride();
  }
};

// Writes this step's K and V rows ([T][n_kv_heads*head_dim]) to their slots.
void write_kv(const StepPlan& plan, const float* k, const float* v, const PagedKvLayer& kv);

// What one layer's attention does to its scores.
struct AttentionParams {
  float scale = 1.0f;    // scores times this (after capping)
  float softcap = 0.0f;  // > 0: each score becomes softcap * tanh(score / softcap) first (gemma2)
  int32_t window = 0;    // > 0: a token at position p sees keys p - window + 1 .. p only (sliding window)
};

// out[t] = softmax(cap(q[t] . K^T) * scale) V over the causal context (or window) of token t's sequence.
// q and out are [T][n_heads*head_dim]; n_heads is a multiple of kv.n_kv_heads (grouped-query).
// As ggml's f16 attention, q and the softmax weights are rounded to fp16 before their dot products. A
// window reads only the keys inside it and gives the bits ggml's -inf mask over the whole context does.
void paged_attention(const StepPlan& plan, const float* q, const PagedKvLayer& kv, int32_t n_heads,
                     const AttentionParams& params, float* out);

// Which kernel runs a query head group. Auto: the widest this CPU has (AVX-512, then AVX2) for head
// sizes 64, 128, 192 and 256, else the portable loops. Every kernel gives the same bits (ggml's
// AVX-512 order); tests pick each in turn to check that.
enum class AttentionKernel { Auto, Avx512, Avx2, Portable };
bool attention_kernel_available(AttentionKernel kernel);
// Tests: run `kernel` where this CPU has it (else the portable loops); Auto restores the default.
void set_attention_kernel(AttentionKernel kernel);

}  // namespace pagoda::engine::cpu
