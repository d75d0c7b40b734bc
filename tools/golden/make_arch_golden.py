#!/usr/bin/env python3
"""Golden data for each model family Pagoda runs, from llama.cpp on random-weight models.

For each (preset, weight type) in MODELS, `pagoda make-model` writes a small random-weight GGUF of that
family (tests/data/arch_golden.json records its FNV-1a hash: the test regenerates the same file), and
llama.cpp evaluates fixed token-id sequences on it (no tokenizer involved):
  * `top1[i]` / `margin[i]` / `logit[i]`: argmax of the logits at position i, its lead over the runner-up
    and its value (the float32 bits as 8 hex digits: Pagoda's must be the same bits), with the whole
    sequence evaluated in ONE batch;
  * `greedy`: the greedy continuation of the first `n_prompt` tokens: prefill, then one token per
    decode step, argmax of the logits, GREEDY_MAX tokens.

Run it with the llama-cpp-python sources (not installed) and the shared libraries built by
scripts/build_llamacpp.sh:

  PYTHONPATH=$CACHE/llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=$CACHE/.../build/bin \\
    .venv/bin/python tools/golden/make_arch_golden.py --pagoda build/cli/pagoda --out tests/data/arch_golden.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

# (preset, weight type): every registered family, each on a second matmul path too, and the unquantized
# types (F16 / F32: ggml's float dot products, float_matrix.h).
MODELS = [
    ("tiny", "q8_0"),
    ("tiny", "q4_0"),
    ("tiny", "f16"),
    ("tiny", "f32"),
    ("qwen2-tiny", "q8_0"),
    ("qwen2-tiny", "q4_1"),
    ("qwen2-tiny", "f16"),
    ("qwen3-tiny", "q8_0"),
    ("qwen3-tiny", "q4_0"),
    ("qwen3moe-tiny", "q8_0"),
    ("qwen3moe-tiny", "q4_0"),
    ("qwen3moe-tiny", "f16"),
    ("qwen3moe-shapes", "q4_0"),
    ("qwen3moe-shapes", "f32"),
    ("qwen3moe-shapes", "f16"),
    # Mixtral: a llama file with experts (llama.cpp's llama graph, MoE branch).
    ("mixtral-tiny", "q8_0"),
    ("mixtral-tiny", "q4_0"),
    # phi3 on Phi-3's own vocabulary (llama.cpp refuses a "phi3" model without its special tokens); the
    # golden test takes the same file from llama.cpp's models/ (cmake/llama_jinja.cmake unpacks it).
    ("phi3-tiny", "q8_0", "ggml-vocab-phi-3.gguf"),
    ("phi3-tiny", "q4_0", "ggml-vocab-phi-3.gguf"),
    ("phi3-tiny", "f16", "ggml-vocab-phi-3.gguf"),
    # gemma2/3: sliding windows of 40 and 48 tokens against sequences of up to 256.
    ("gemma2-tiny", "q8_0"),
    ("gemma2-tiny", "f16"),
    ("gemma3-tiny", "q8_0"),
    ("gemma3-tiny", "q4_0"),
]
SEED = 1
# (name, sequence length, prompt length): the tiny presets have a 256-token context.
CASES = [("short", 24, 8), ("medium", 96, 40), ("long", 200, 120), ("repeats", 160, 64), ("full", 256, 200)]
GREEDY_MAX = 24


def fnv1a64(path: str) -> str:
    h = 0xCBF29CE484222325
    with open(path, "rb") as f:
        data = f.read()
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def sequence(name: str, length: int, vocab: int, seed: int) -> list[int]:
    """Fixed token ids: random over the vocabulary, or (repeats) a short random phrase repeated, which
    gives the attention something to copy."""
    rng = random.Random(f"{name}-{seed}")
    if name == "repeats":
        phrase = [rng.randrange(vocab) for _ in range(12)]
        return [phrase[i % len(phrase)] for i in range(length)]
    return [rng.randrange(vocab) for _ in range(length)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pagoda", required=True, help="the pagoda CLI (for make-model)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp  # noqa: E402  (found through PYTHONPATH)
    from llama_cpp import Llama
    # The vocabulary-only GGUFs of the same sources (vendor/llama.cpp/models).
    llama_models = os.path.join(os.path.dirname(os.path.dirname(llama_cpp.__file__)), "vendor", "llama.cpp", "models")

    models = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset, wtype, *vocab_file in MODELS:
            path = os.path.join(tmp, f"{preset}-{wtype}.gguf")
            vocab_args = ["--vocab", os.path.join(llama_models, vocab_file[0])] if vocab_file else []
            subprocess.run([args.pagoda, "make-model", "--preset", preset, "--type", wtype, "--seed", str(SEED),
                            "--out", path, *vocab_args], check=True, capture_output=True)
            llm = Llama(model_path=path, n_ctx=256, n_batch=256, n_ubatch=256, logits_all=True,
                        n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
            vocab = llm.n_vocab()
            cases = []
            for name, length, n_prompt in CASES:
                seq = sequence(name, length, vocab - 2, SEED)  # the last two ids are control tokens
                llm.reset()
                llm.eval(seq)
                logits = np.array(llm.scores[:length], dtype=np.float32)
                top1 = [int(np.argmax(r)) for r in logits]
                logit = [f"{np.float32(r[t]).view(np.uint32):08x}" for r, t in zip(logits, top1)]
                margin = []
                for r, t in zip(logits, top1):
                    rest = np.delete(r, t)
                    margin.append(round(float(r[t] - np.max(rest)), 5))
                llm.reset()
                llm.eval(seq[:n_prompt])
                greedy = []
                while len(greedy) < GREEDY_MAX:
                    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                    greedy.append(tok)
                    if len(greedy) < GREEDY_MAX:
                        llm.eval([tok])
                cases.append({"name": name, "tokens": seq, "n_prompt": n_prompt, "top1": top1, "margin": margin,
                              "logit": logit, "greedy": greedy})
                print(f"{preset:11s} {wtype} {name:8s} len={length:3d} min_margin={min(margin):.5f} "
                      f"greedy={greedy[:8]}...", file=sys.stderr)
            models.append({"preset": preset, "type": wtype, "seed": SEED, **({"vocab": vocab_file[0]} if vocab_file else {}),
                           "fnv1a64": fnv1a64(path),
                           "architecture": llm.metadata.get("general.architecture"), "n_vocab": vocab,
                           "cases": cases})
            del llm

    doc = {
        "generator": "tools/golden/make_arch_golden.py",
        "llama_cpp": {"package": "llama-cpp-python 0.3.36", "version": llama_cpp.__version__},
        "settings": {"n_ctx": 256, "n_batch": 256, "n_threads": args.threads, "kv_cache": "f16 (llama.cpp default)",
                     "flash_attn": False, "backend": "CPU", "greedy_max": GREEDY_MAX},
        "models": models,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        head = {k: v for k, v in doc.items() if k != "models"}
        for k, v in head.items():
            f.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
        f.write('"models": [\n')
        for i, m in enumerate(models):
            f.write(json.dumps(m, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(models) else "\n")
        f.write("]\n}\n")
    json.load(open(args.out, encoding="utf-8"))
    print(f"wrote {args.out}: {len(models)} models", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
