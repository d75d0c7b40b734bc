#!/usr/bin/env python3
"""Forward-pass golden data for Pagoda, produced by llama.cpp on the same GGUF file.

For each prompt:
  * `tokens`   prompt tokens (llama.cpp tokenizer; add_bos from the model metadata, special tokens parsed
               only for chat prompts) followed by llama.cpp's greedy continuation, then fixed English text
               until the sequence reaches the case's target length;
  * `top1[i]`  argmax of the logits at position i (the prediction of token i+1) when `tokens` is evaluated
               in ONE batch (every position produces logits);
  * `margin[i]` top-1 logit minus top-2 logit at position i, rounded to 4 decimals (small margins are
               near-ties: an implementation that differs only in rounding may pick the other token there);
  * `greedy`   the greedy continuation of the prompt: prefill of the prompt, then one token per decode
               step, argmax of the logits (no sampler), at most 32 tokens, stopping after an
               end-of-generation token (which is included).

Run it with the llama-cpp-python sources (not installed) and the shared libraries built by
scripts/build_llamacpp.sh:

  PYTHONPATH=$CACHE/llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=$CACHE/.../build/bin \
    python tools/golden/make_forward_golden.py --model M --out tests/data/forward_golden.json

The Python needs numpy, typing-extensions, diskcache and jinja2.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# (name, prompt, chat, target total length of the teacher-forced sequence)
CASES = [
    ("fact_capital", "The capital of France is", False, 100),
    ("fact_water", "Water is made of two elements:", False, 100),
    ("fact_planets", "The planets of the solar system, in order from the Sun, are", False, 110),
    ("fact_history", "In 1969, the Apollo 11 mission", False, 100),
    ("code_python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", False, 120),
    ("code_cpp", "#include <vector>\n\n// Sum all elements of a vector.\nint sum(const std::vector<int>& v) {\n", False, 120),
    ("code_sql", "-- Select the ten most recent orders of each customer\nSELECT", False, 100),
    ("story_dragon", "Once upon a time, in a small village at the edge of a forest, there lived a young dragon who", False, 128),
    ("story_robot", "The robot opened its eyes for the first time and saw", False, 100),
    ("list_fruits", "Here is a list of five fruits:\n1.", False, 100),
    ("list_steps", "How to make a cup of tea:\nStep 1:", False, 110),
    ("math_add", "Question: What is 17 + 25?\nAnswer:", False, 100),
    ("math_word", "If a train travels 60 miles per hour for 3 hours, how far does it travel? Let's think step by step.", False, 110),
    ("math_seq", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,", False, 100),
    ("unicode", "Bonjour! Comment ça va? 日本語のテキスト — émojis 🙂 and symbols ∑ ∞ ≠.", False, 100),
    ("whitespace", "   Indented   text\twith\ttabs\n\n\nand blank lines   ", False, 100),
    ("long_context", "The history of computing is a long one. " * 6 + "It began with", False, 300),
    ("very_long", "Paris is the capital and largest city of France. " * 4 + "Tell me more:", False, 480),
    ("chat_capital", "What is the capital of France?", True, 110),
    ("chat_code", "Write a Python function that reverses a string.", True, 120),
    ("chat_story", "Tell me a very short story about a cat.", True, 120),
    ("chat_list", "List three primary colors.", True, 100),
    ("chat_math", "What is 12 times 12?", True, 100),
    ("chat_explain", "Explain what a neural network is in one sentence.", True, 110),
]

FILLER = (
    " The morning was quiet, and the old library smelled of paper and dust. Maria walked between the"
    " shelves, reading the titles one by one: atlases, dictionaries, books about birds and rivers and"
    " the stars. She had come to find a map of the coast, drawn two hundred years ago by a sailor who"
    " never returned home. The librarian said the map was kept in a wooden box on the top floor, next"
    " to the window that faces the sea. When she opened the box, the map was there, folded eight times,"
    " its ink faded to the colour of tea. Along the edge someone had written a list of numbers: 3, 14,"
    " 15, 92, 65. She copied them into her notebook and went outside to think."
)

GREEDY_MAX = 32


def chatml(user: str) -> str:
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ggml_commit(pkg_dir: str) -> str:
    src = os.path.join(pkg_dir, "vendor", "llama.cpp")
    try:
        return subprocess.check_output(["git", "-C", src, "rev-parse", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp  # noqa: E402  (found through PYTHONPATH)
    from llama_cpp import Llama

    pkg_dir = os.path.dirname(os.path.dirname(os.path.abspath(llama_cpp.__file__)))
    n_ctx = 512
    seed = 1234
    llm = Llama(model_path=args.model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                n_threads=args.threads, n_threads_batch=args.threads, seed=seed, verbose=False)
    model = llm._model
    vocab = model.vocab
    add_bos = bool(model.add_bos_token())
    n_vocab = llm.n_vocab()
    filler = llm.tokenize(FILLER.encode(), add_bos=False, special=False)

    def is_eog(tok: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(vocab, tok))

    def top2(row: np.ndarray) -> tuple[int, float]:
        i1 = int(np.argmax(row))
        v1 = float(row[i1])
        row2 = row.copy()
        row2[i1] = -np.inf
        v2 = float(np.max(row2))
        return i1, round(v1 - v2, 4)

    cases = []
    total = 0
    disagree_margins: list[float] = []
    for name, prompt, chat, target in CASES:
        text = chatml(prompt) if chat else prompt
        ptoks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=chat)
        assert len(ptoks) < target <= n_ctx, (name, len(ptoks), target)

        # Greedy: prefill, then one token per decode step.
        llm.reset()
        llm.eval(ptoks)
        greedy: list[int] = []
        while len(greedy) < GREEDY_MAX:
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            greedy.append(tok)
            if is_eog(tok):
                break
            llm.eval([tok])

        # Teacher-forced sequence: prompt + greedy (up to the EOG token) + filler text.
        seq = list(ptoks) + greedy
        k = 0
        while len(seq) < target:
            seq.append(filler[k % len(filler)])
            k += 1
        seq = seq[:target]

        # One batch, logits for every position.
        llm.reset()
        llm.eval(seq)
        logits = np.array(llm.scores[:len(seq)], dtype=np.float32)
        assert logits.shape == (len(seq), n_vocab)
        top1, margin = [], []
        for i in range(len(seq)):
            t, m = top2(logits[i])
            top1.append(t)
            margin.append(m)

        agree = 0
        for i, g in enumerate(greedy):
            if top1[len(ptoks) - 1 + i] == g:
                agree += 1
            else:
                disagree_margins.append(margin[len(ptoks) - 1 + i])
        print(f"{name:14s} n_prompt={len(ptoks):3d} len={len(seq):3d} greedy={len(greedy):2d} "
              f"batch/greedy agree={agree}/{len(greedy)} min_margin={min(margin):.4f} "
              f"text={llm.detokenize(greedy).decode('utf-8', 'replace')!r}", file=sys.stderr)
        cases.append({"name": name, "prompt": prompt, "chat": chat, "n_prompt": len(ptoks),
                      "tokens": seq, "top1": top1, "margin": margin, "greedy": greedy})
        total += len(seq)

    doc_head = {
        "model_sha256": sha256(args.model),
        "llama_cpp": {"package": "llama-cpp-python 0.3.36", "ggml_commit": ggml_commit(pkg_dir)},
        "command": "python tools/golden/make_forward_golden.py --model SmolLM2-135M-Instruct.Q4_1.gguf "
                   f"--out {args.out} --threads {args.threads}",
        "settings": {
            "n_ctx": n_ctx, "n_batch": n_ctx, "n_ubatch": n_ctx, "n_threads": args.threads, "seed": seed,
            "kv_cache": "f16 (llama.cpp default)", "flash_attn": False, "backend": "CPU",
            "add_bos": add_bos, "n_vocab": n_vocab,
            "chat_template": "ChatML text with the SmolLM system prompt, tokenized with special=True",
            "greedy": f"argmax of logits, prefill then one token per decode, max {GREEDY_MAX} tokens, stops after "
                      "an end-of-generation token (included)",
            "tokens": "prompt + greedy continuation + fixed filler text up to the case's length, evaluated "
                      "in one batch; top1[i]/margin[i] are from the logits at position i",
        },
        # llama.cpp against itself: where its one-token decode steps (greedy) and its one-batch evaluation
        # pick different tokens, and the batch margin there. Comparisons should tolerate near-ties of
        # about this size.
        "self_check": {
            "greedy_positions": sum(len(c["greedy"]) for c in cases),
            "greedy_vs_batch_disagreements": len(disagree_margins),
            "max_batch_margin_at_disagreement": max(disagree_margins, default=0.0),
        },
        "filler_text": FILLER,
        "total_positions": total,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        for k, v in doc_head.items():
            f.write(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n")
        f.write('"cases": [\n')
        for i, c in enumerate(cases):
            f.write(json.dumps(c, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(cases) else "\n")
        f.write("]\n}\n")
    json.load(open(args.out, encoding="utf-8"))  # sanity: valid JSON
    print(f"wrote {args.out}: {len(cases)} cases, {total} positions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
