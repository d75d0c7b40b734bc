#!/usr/bin/env python3
"""Golden token ids from llama.cpp for the Pagoda tokenizer test (tests/data/tokenizer_golden.json).

Runs llama.cpp's own tokenizer (through the llama-cpp-python binding, vocab only) over a fixed corpus and
records, per string, the ids for (add_special=false, parse_special=false) and, for a subset, the ids with
parse_special=true. Strings are stored as hex of their raw bytes so invalid UTF-8 survives JSON.
Also records llama.cpp's end-of-generation ids, the attributes of non-normal tokens and a sample of
token_to_piece results.

Usage (the binding is used in place, not installed):
  PYTHONPATH=<llama_cpp_python src> LLAMA_CPP_LIB_PATH=<dir of libllama.so> python \
      tools/golden/make_tokenizer_golden.py --model SmolLM2-135M-Instruct.Q4_1.gguf \
      --out tests/data/tokenizer_golden.json
"""
import argparse
import ctypes
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile


def corpus() -> list[bytes]:
    """The test strings, as raw bytes (most are UTF-8; a few are deliberately invalid)."""
    s: list[str] = []
    # English prose
    s += [
        "Hello world",
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "It was the best of times, it was the worst of times, it was the age of wisdom.",
        "A man, a plan, a canal: Panama.",
        "Call me Ishmael. Some years ago—never mind how long precisely—having little money in my purse...",
        "She sells sea-shells by the sea-shore.",
        "To be, or not to be: that is the question.",
        "I'm sure you're right, but we've got to go; they'll wait and I'd rather not.",
        "e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag",
        "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal.",
        "\"Quoted\" and 'single quoted' and `backticks`",
        "(parentheses) [brackets] {braces} <angles>",
        "semi;colon:colon,comma.period!bang?question",
        "UPPERCASE lowercase MixedCase camelCase snake_case kebab-case",
        "Supercalifragilisticexpialidocious antidisestablishmentarianism",
        "a",
        " ",
        "",
        "ab",
        "The year 1999 was followed by 2000.",
        "SmolLM is a small language model trained by Hugging Face.",
        "Once upon a time, in a land far, far away, there lived a little tokenizer.",
        "OK",
        "Yes. No. Maybe?",
    ]
    # Contractions, including odd cases (llama.cpp's gpt2 regex is case-sensitive here)
    s += [
        "don't won't can't shouldn't",
        "DON'T WON'T CAN'T",
        "I'M YOU'RE WE'VE THEY'LL HE'D",
        "I'm You'Re We'vE They'lL He'D",
        "it's It'S IT's",
        "'s 't 're 've 'm 'll 'd",
        "'S 'T 'RE 'VE 'M 'LL 'D",
        "''s '''t 'x 'ss",
        "rock 'n' roll",
        "the dogs' bones, the dog's bone",
        "o'clock O'Neil d'Artagnan",
        "'",
        "''",
        "'re",
        "x'",
        "’s curly apostrophe ’re",
    ]
    # Code in several languages
    s += [
        "def foo(x):\n    return x * 2\n",
        "class Foo:\n\tdef __init__(self):\n\t\tself.x = 1\n",
        "#include <stdio.h>\nint main(void) {\n    printf(\"hello\\n\");\n    return 0;\n}\n",
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
        "const x = (a, b) => a + b; // arrow function",
        "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(1, 2));",
        "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
        "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
        "<html><body><div class=\"x\">Hi &amp; bye</div></body></html>",
        "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "x = [i**2 for i in range(10) if i % 2 == 0]",
        "if (a && b || !c) { return a != b ? a : b; }",
        "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done\n",
        "public static void main(String[] args) { System.out.println(\"Hello\"); }",
        "template <typename T> constexpr T max(T a, T b) { return a > b ? a : b; }",
        "std::vector<std::string> v{\"a\", \"b\"}; auto it = v.begin();",
        "    indented with four spaces",
        "\tindented with a tab",
        "a->b; a::b; a<<=1; a>>=2; a===b; a!==b; a**=3;",
        "@decorator\ndef f(*args, **kwargs): pass",
        "$var = array('a' => 1); echo $var['a'];",
        "# Markdown heading\n\n- item 1\n- item 2\n\n```python\nprint('x')\n```\n",
        "| col1 | col2 |\n|------|------|\n| a    | b    |",
        "x=1;y=2;z=x+y",
        "(define (square x) (* x x))",
        "main :: IO ()\nmain = putStrLn \"hello\"",
        "\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\alpha_i",
        "0x1F 0xdeadbeef 0b1010 0o777 1e-10 3.14159 -42 +7",
        "path/to/file.txt C:\\Windows\\System32 ~/.bashrc ../up",
    ]
    # Numbers and digit runs of many lengths
    for n in range(1, 21):
        s.append("".join(str((i * 7 + 3) % 10) for i in range(n)))
    s += [
        "1234567890123456789012345678901234567890",
        "3.14159265358979323846",
        "1,000,000 and 2.5e10 and 1_000_000",
        "phone: +1 (555) 123-4567",
        "2024-01-31T12:34:56Z",
        "v1.2.3-rc4",
        "100% of 50 is 50",
        "abc123def456",
        "a1b2c3",
        " 1 22 333 4444 55555",
        "١٢٣٤٥ ٦٧٨٩٠",  # Arabic-Indic digits
        "१२३४५ digits",  # Devanagari digits
        "½ ¼ ¾ ² ³ ⅓ Ⅻ ⑤",  # other numbers (No, Nl)
        "１２３ fullwidth",
        "$1,234.56 €99 £5 ¥1000",
        "0",
        "00",
        "007",
        "x0",
        "0x",
    ]
    # Whitespace runs (tabs, newlines, trailing spaces)
    s += [
        "  ",
        "   ",
        "    ",
        "        ",
        "\t",
        "\t\t",
        "\n",
        "\n\n",
        "\n\n\n\n",
        "\r\n",
        "\r\n\r\n",
        " \n",
        "\n ",
        "a  b",
        "a   b",
        "a    b",
        "a\tb",
        "a\t\tb",
        "a\nb",
        "a\n\nb",
        "a \n b",
        "a\n  b",
        "trailing space ",
        "trailing spaces   ",
        "trailing tab\t",
        "trailing newline\n",
        "   leading spaces",
        "\tleading tab",
        "\nleading newline",
        "mixed \t \n \r\n whitespace",
        "line1\nline2\r\nline3\rline4",
        "a \t b",
        "end with spaces and newline  \n",
        " \t\n\r\x0b\x0c",
        "x\x0by\x0cz",
        "non\u00a0breaking\u00a0space",
        "em\u2003space thin\u2009space",
        "ideographic\u3000space",
        "line\u2028separator\u2029para",
        "next\u0085line",
        "zero\u200bwidth\u200cjoiner\u200dx",
        "word \u00a0 word",
        "1 \n 2",
        "   \n   \n   ",
    ]
    # Accents and Latin scripts
    s += [
        "café naïve résumé coöperate",
        "Ça va? Où est la bibliothèque?",
        "Straße Größe Übermut",
        "mañana niño año",
        "Łódź Kraków Gdańsk",
        "Ærøskøbing",
        "İstanbul ıi",
        "cafe\u0301 (combining acute)",
        "a\u0300\u0301\u0302\u0303 stacked",
        "Ελληνικά γράμματα",
        "Русский текст, привет мир!",
        "Українська мова",
        "Tiếng Việt có dấu",
        "ǅ ǈ ǋ titlecase",
        "ﬁ ﬂ ligatures",
        "ẞ capital sharp s",
    ]
    # CJK, Arabic, Hindi and other scripts
    s += [
        "你好，世界！",
        "我爱自然语言处理。",
        "日本語のテキストです。",
        "ひらがな カタカナ 漢字",
        "한국어 텍스트입니다",
        "中文English混合text",
        "东京2020奥运会",
        "مرحبا بالعالم",
        "العربية: اللغة الجميلة.",
        "עברית טקסט",
        "नमस्ते दुनिया",
        "हिन्दी में लिखा गया पाठ।",
        "বাংলা ভাষা",
        "தமிழ் மொழி",
        "ภาษาไทย",
        "ქართული",
        "Հայերեն",
        "አማርኛ",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
        "𠀀𠀁 rare CJK",
    ]
    # Emoji, including ZWJ sequences, flags, skin tones and variation selectors
    s += [
        "😀",
        "😀😃😄",
        "I ❤️ NY",
        "👍🏽 thumbs",
        "👨‍👩‍👧‍👦 family",
        "🏳️‍🌈 flag",
        "🇺🇸🇬🇧🇯🇵",
        "🧑‍💻 coder",
        "emoji at end 🎉",
        "🎉 emoji at start",
        "a😀b",
        " 😀 ",
        "✅ ✔ ✗ ☃ ★",
        "1️⃣ 2️⃣ #️⃣",
        "🤖🤖🤖🤖🤖",
    ]
    # Symbols and punctuation runs
    s += [
        "!!!",
        "???!!!...",
        "...",
        "—–-",
        "«guillemets» „quotes“ “curly” ‘single’",
        "→ ← ↑ ↓ ⇒ ∀ ∃ ∑ ∫ √ ∞ ≠ ≤ ≥",
        "© ® ™ § ¶ † ‡ • …",
        "~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
        "a!b@c#d",
        "=====",
        "-----BEGIN-----",
        "***bold*** __under__",
        "<<>> <</SYS>> [INST] [/INST]",
        "<s> </s> <unk>",
    ]
    # Special-token text (encoded with parse_special false and true)
    s += [
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
        "text<|im_end|>text",
        "<|im_start|><|im_start|>",
        "<|im_start",
        "im_start|>",
        "<|im_start|>|>",
        "<<|im_end|>>",
        "a<|endoftext|>b<|endoftext|>c",
        " <|im_start|> ",
        "<repo_name>my/repo<file_sep>main.py",
        "<fim_prefix>def f():<fim_suffix>\n<fim_middle>",
        "<|im_end|>\n\n",
        "\n<|im_start|>",
        "<|IM_START|>",
    ]
    # Control characters
    s += [
        "\x00",
        "a\x00b",
        "\x01\x02\x03",
        "bell\x07 backspace\x08 escape\x1b[0m",
        "\x7f delete",
        "\x1c\x1d\x1e\x1f separators",
        "\u0080\u0081\u009f C1",
        "soft\u00adhyphen",
        "\ufeffBOM at start",
        "rtl \u202eoverride\u202c",
        "\ufffd replacement char",
        "private \ue000\uf8ff use",
        "noncharacter \ufffe\uffff",
        "unassigned \u0378\u0379",
    ]
    # Longer mixed text
    s += [
        "The Eiffel Tower (French: tour Eiffel) is a wrought-iron lattice tower on the Champ de Mars in Paris, "
        "France. It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
        "from 1887 to 1889.",
        "User: What's 2+2?\nAssistant: 2+2 = 4.\nUser: And 12*12?\nAssistant: 144.",
        "Q: ¿Cómo estás?\nA: ¡Muy bien, gracias!",
        "Mixed: English, Français, Deutsch, 中文, 日本語, العربية, हिन्दी, 😀.",
        "   Lots   of    irregular     spacing      here   ",
        "tab\tseparated\tvalues\t1\t2\t3",
        "a,b,c\n1,2,3\n4,5,6\n",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
        "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.",
        "word " * 40,
        "ab" * 64,
        "\n" * 17,
        " " * 33,
        "9" * 50,
        "hello\n\n\n\nworld\t\t\tagain   ",
    ]
    out = [x.encode("utf-8") for x in s]
    # Raw bytes that are not valid UTF-8 (llama.cpp maps each bad byte to U+FFFD)
    out += [
        b"\xff",
        b"\xfe\xff",
        b"abc\xffdef",
        b"\x80",
        b"\x80\x80\x80",
        b"\xc3",
        b"caf\xc3",
        b"\xc3(",
        b"\xe2\x82",
        b"\xe2\x82 trailing",
        b"\xf0\x9f\x98",
        b"\xf0\x9f\x98 x",
        b"\xc0\xaf overlong",
        b"\xed\xa0\x80 surrogate",
        b"ok \xff\xfe\xfd bad",
        b"\xe4\xbd\xa0\xe5\xa5",
    ]
    return out


# Strings also encoded with parse_special=true: every one with '<' or '[' and a sample of the rest.
def wants_special(i: int, b: bytes) -> bool:
    return b"<" in b or b"[" in b or i % 5 == 0


# A tiny hand-built SentencePiece-style ("llama") vocabulary: written to a vocab-only GGUF so llama.cpp
# tokenizes with it; the spec is stored in the JSON so the C++ test builds the same tokenizer by hand.
SPM_PIECES = [("▁", -1.0), ("h", -2.0), ("e", -2.0), ("l", -2.0), ("o", -2.0), ("w", -2.5), ("r", -2.5),
              ("d", -2.5), ("▁h", -3.0), ("he", -3.5), ("ll", -3.0), ("llo", -4.0), ("hello", -5.0),
              ("▁hello", -4.5), ("▁w", -3.2), ("or", -3.3), ("orld", -5.5), ("▁world", -5.0), ("ld", -4.2),
              ("wor", -6.0), ("é", -3.0), ("▁▁", -2.8), ("<user>", 0.0), ("ab", -1.5), ("a", -2.0),
              ("b", -2.0), ("bc", -1.4), ("c", -2.0), ("▁a", -2.2), ("▁▁▁", -2.9)]
SPM_CORPUS = [b"hello world", b"hello", b" hello  world", b"abc", b"h\xc3\xa9llo \xe2\x82\xac",
              b"hello<user>world<s>x", b"", b" ", b"   ", b"a b c", b"abcabc", b"\n", b"hello\nworld",
              b"world hello", b"</s>", b"<unk>", b"x<s>", b"\xf0\x9f\x98\x80", b"ab  bc", b"wor ld",
              b"<user><user>", b"helloworld", b"\xff", b"a\tb", b"HELLO"]


def spm_golden(llama_cpp_module, tmpdir: str) -> dict:
    sys.path.insert(0, str(pathlib.Path(llama_cpp_module.__file__).resolve().parent.parent
                           / "vendor" / "llama.cpp" / "gguf-py"))
    import gguf

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in SPM_PIECES]
    scores = [0.0] * (3 + 256) + [sc for _, sc in SPM_PIECES]
    types = [2, 3, 3] + [6] * 256 + [1] * len(SPM_PIECES)
    types[tokens.index("<user>")] = 4
    path = os.path.join(tmpdir, "spm_tiny.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(8)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    llm = llama_cpp_module.Llama(model_path=path, vocab_only=True, verbose=False)
    cases = [{"hex": b.hex(),
              "ids_add_special": llm.tokenize(b, add_bos=True, special=False),
              "ids_special": llm.tokenize(b, add_bos=False, special=True)} for b in SPM_CORPUS]
    return {"tokens": tokens, "scores": scores, "token_types": types, "bos_id": 1, "eos_id": 2, "unk_id": 0,
            "add_bos": True, "add_space_prefix": True, "cases": cases}


# Other pre-tokenizers, checked with the model's own vocabulary and merges under a different
# tokenizer.ggml.pre (written to a vocab-only GGUF): each string of every third corpus entry.
OTHER_PRES = ["gpt-2", "llama-bpe", "qwen2", "default", "starcoder", "deepseek-llm", "deepseek-coder",
              "deepseek-v3", "falcon", "poro-chat", "tekken"]


def pre_variants(llama_cpp_module, model_path: str, tmpdir: str, texts: list[bytes]) -> dict:
    sys.path.insert(0, str(pathlib.Path(llama_cpp_module.__file__).resolve().parent.parent
                           / "vendor" / "llama.cpp" / "gguf-py"))
    import gguf

    r = gguf.GGUFReader(model_path)

    def arr_str(k):
        f = r.fields[k]
        return [bytes(f.parts[i]).decode("utf-8", errors="surrogateescape") for i in f.data]

    def arr_int(k):
        f = r.fields[k]
        return [int(f.parts[i][0]) for i in f.data]

    tokens, merges = arr_str("tokenizer.ggml.tokens"), arr_str("tokenizer.ggml.merges")
    types = arr_int("tokenizer.ggml.token_type")
    out = {}
    for pre in OTHER_PRES:
        path = os.path.join(tmpdir, f"pre_{pre}.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_context_length(64)
        w.add_embedding_length(8)
        w.add_block_count(1)
        w.add_feed_forward_length(8)
        w.add_head_count(1)
        w.add_head_count_kv(1)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_dimension_count(8)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_merges(merges)
        w.add_token_types(types)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        llm = llama_cpp_module.Llama(model_path=path, vocab_only=True, verbose=False)
        out[pre] = [{"hex": b.hex(), "ids": llm.tokenize(b, add_bos=False, special=False)} for b in texts]
    return out


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def llama_cpp_commit(llama_cpp_module) -> str:
    root = pathlib.Path(llama_cpp_module.__file__).resolve().parent.parent / "vendor" / "llama.cpp"
    try:
        return subprocess.check_output(["git", "-C", str(root), "rev-parse", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:
        pass
    info = root / "build" / "common" / "build-info.cpp"
    if info.exists():
        m = re.search(r'LLAMA_COMMIT = "([0-9a-f]+)"', info.read_text())
        if m:
            return m.group(1)
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF model (only its vocabulary is loaded)")
    ap.add_argument("--out", required=True, help="output JSON path")
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import llama_cpp as C

    llm = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)
    vocab = C.llama_model_get_vocab(llm.model)
    n_vocab = C.llama_vocab_n_tokens(vocab)

    cases = []
    for i, b in enumerate(corpus()):
        case = {"hex": b.hex(), "ids": llm.tokenize(b, add_bos=False, special=False)}
        if wants_special(i, b):
            case["ids_special"] = llm.tokenize(b, add_bos=False, special=True)
        # add_special=true (the model's add_bos/add_eos flags) on a few cases
        if i % 17 == 0:
            case["ids_add_special"] = llm.tokenize(b, add_bos=True, special=False)
        cases.append(case)

    def piece(tok: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = C.llama_token_to_piece(vocab, tok, buf, len(buf), 0, special)
        assert n >= 0, (tok, n)
        return buf.raw[:n]

    piece_ids = sorted(set(list(range(0, 600)) + list(range(600, n_vocab, 89)) + [n_vocab - 1]))
    pieces = [{"id": t, "hex": piece(t, False).hex(), "hex_special": piece(t, True).hex()} for t in piece_ids]

    attrs = {}
    for t in range(n_vocab):
        a = C.llama_vocab_get_attr(vocab, t)
        if a != 4:  # LLAMA_TOKEN_ATTR_NORMAL
            attrs[str(t)] = a

    with tempfile.TemporaryDirectory() as tmpdir:
        spm = spm_golden(llama_cpp, tmpdir)
        pres = pre_variants(llama_cpp, args.model, tmpdir, corpus()[::3])

    out = {
        "generator": "tools/golden/make_tokenizer_golden.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_commit": llama_cpp_commit(llama_cpp),
        "model": os.path.basename(args.model),
        "model_sha256": sha256_of(args.model),
        "tokenizer_model": llm.metadata.get("tokenizer.ggml.model"),
        "tokenizer_pre": llm.metadata.get("tokenizer.ggml.pre"),
        "n_vocab": n_vocab,
        "bos_id": C.llama_vocab_bos(vocab),
        "eos_id": C.llama_vocab_eos(vocab),
        "eog_ids": [t for t in range(n_vocab) if C.llama_vocab_is_eog(vocab, t)],
        "non_normal_attrs": attrs,
        "pieces": pieces,
        "cases": cases,
        "spm": spm,
        "other_pre": pres,
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # One line per case / piece keeps the file reviewable in diffs.
    with open(args.out, "w") as f:
        f.write("{\n")
        items = list(out.items())
        for k, (key, value) in enumerate(items):
            sep = "," if k + 1 < len(items) else ""
            if isinstance(value, list) and value and isinstance(value[0], dict):
                f.write(f" {json.dumps(key)}: [\n")
                for j, v in enumerate(value):
                    f.write("  " + json.dumps(v, separators=(",", ":")) + ("," if j + 1 < len(value) else "") + "\n")
                f.write(f" ]{sep}\n")
            else:
                f.write(f" {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}{sep}\n")
        f.write("}\n")
    n_special = sum(1 for c in cases if "ids_special" in c)
    print(f"wrote {args.out}: {len(cases)} cases ({n_special} also with parse_special), "
          f"llama.cpp {out['llama_cpp_commit']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
