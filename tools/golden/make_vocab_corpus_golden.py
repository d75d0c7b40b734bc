#!/usr/bin/env python3
"""The project's tokenizer corpus on every family's vocabulary, tokenized by llama.cpp.

tests/data/tokenizer_golden.json holds llama.cpp's ids for the corpus on the default model's vocabulary;
this file (tests/data/vocab_corpus_golden.json) holds them for each of llama.cpp's vocabulary-only GGUFs
(vendor/llama.cpp/models/ggml-vocab-<family>.gguf, which cmake/llama_jinja.cmake unpacks for the tests):
  * every corpus string with add_special=false, parse_special=false (`ids`);
  * the corpus strings make_tokenizer_golden.wants_special picks, and chat-shaped strings built from the
    vocabulary's own special tokens with whitespace around them (`special` cases), with parse_special=true:
    where special tokens strip the whitespace next to them (Phi-3) and how each family splits around them.
Strings are hex of their raw bytes, as in tokenizer_golden.json.

  PYTHONPATH=$CACHE/llama_cpp_python-0.3.36 LLAMA_CPP_LIB_PATH=$CACHE/.../build/bin \\
    .venv/bin/python tools/golden/make_vocab_corpus_golden.py --out tests/data/vocab_corpus_golden.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_golden import corpus, wants_special  # noqa: E402

# As tests/engine/tokenizer/llama_vocab_cases_test.cpp's kFamilies.
FAMILIES = ["llama-spm", "llama-bpe", "phi-3", "qwen2", "qwen35", "gemma-4", "starcoder", "deepseek-coder",
            "deepseek-llm", "falcon", "gpt-2", "mpt", "refact", "command-r"]


def special_strings(llm) -> list[bytes]:
    """Chat-shaped text around the vocabulary's own special tokens (BOS/EOS and the first others)."""
    import llama_cpp
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llm.n_vocab()
    specials = []
    for t in range(n):
        attr = llama_cpp.llama_vocab_get_attr(vocab, t)
        if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED):
            text = llm.detokenize([t], special=True)
            if text and len(specials) < 8:
                specials.append(text)
    out = []
    for a, b in zip(specials, specials[1:] + specials[:1]):
        out += [a + b"\nHello" + b + b"\n", a + b"  spaced \t" + b + b"  \n\n tail", b" " + a + b"x" + b + b" ",
                a + a + b"\n\n" + b]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import llama_cpp  # noqa: E402  (found through PYTHONPATH)
    from llama_cpp import Llama
    models = os.path.join(os.path.dirname(os.path.dirname(llama_cpp.__file__)), "vendor", "llama.cpp", "models")

    texts = corpus()
    doc = {"generator": "tools/golden/make_vocab_corpus_golden.py",
           "llama_cpp": {"package": "llama-cpp-python 0.3.36", "version": llama_cpp.__version__},
           "corpus": [b.hex() for b in texts], "families": {}}
    for fam in FAMILIES:
        llm = Llama(model_path=os.path.join(models, f"ggml-vocab-{fam}.gguf"), vocab_only=True, verbose=False)
        plain = [llm.tokenize(b, add_bos=False, special=False) for b in texts]
        special = [{"hex": b.hex(), "ids": llm.tokenize(b, add_bos=False, special=True)}
                   for i, b in enumerate(texts) if wants_special(i, b)]
        special += [{"hex": b.hex(), "ids": llm.tokenize(b, add_bos=False, special=True)} for b in special_strings(llm)]
        doc["families"][fam] = {"plain": plain, "special": special}
        print(f"{fam:15s} {sum(map(len, plain))} ids over {len(texts)} strings, {len(special)} special cases",
              file=sys.stderr)
        del llm
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out) >> 10} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
