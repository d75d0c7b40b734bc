#!/usr/bin/env python3
"""Writes the committed seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/).

Seeds are small typical inputs, laid out the way each target reads its bytes (see the target's header
comment). Run it again after changing a target's input layout: `python3 tests/fuzz/make_corpus.py`.
Only the standard library: GGUF and protobuf bytes are packed by hand.
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- GGUF ----------------------------------------------------------------------------------------
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i", T_F32: "<f",
          T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == T_STR:
        return gstr(v)
    if t == T_ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += gval(et, it)
        return out
    return struct.pack(SCALAR[t], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, dims, ggml_type, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    offsets, off = [], 0
    for _, _, _, data in tensors:
        offsets.append(off)
        off += (len(data) + alignment - 1) // alignment * alignment
    for (name, dims, gtype, _), o in zip(tensors, offsets):
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gtype, o)
    out += b"\0" * ((-len(out)) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * ((-len(data)) % alignment)
    return out


def gguf_seeds():
    g = "\u0120"  # GPT-2 byte-level space
    gpt2_tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", g, g + "a", "ab", "abc", "\n"]
    gpt2 = [
        ("general.architecture", T_STR, "llama"),
        ("general.name", T_STR, "tiny"),
        ("general.alignment", T_U32, 32),
        ("llama.block_count", T_U32, 1),
        ("llama.context_length", T_U32, 64),
        ("llama.embedding_length", T_U32, 8),
        ("llama.feed_forward_length", T_U32, 16),
        ("llama.attention.head_count", T_U32, 2),
        ("llama.attention.head_count_kv", T_U32, 1),
        ("llama.rope.freq_base", T_F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
        ("llama.vocab_size", T_U32, len(gpt2_tokens)),
        ("tokenizer.ggml.model", T_STR, "gpt2"),
        ("tokenizer.ggml.pre", T_STR, "smollm"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, gpt2_tokens)),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [3, 3, 3] + [1] * (len(gpt2_tokens) - 3))),
        ("tokenizer.ggml.merges", T_ARR, (T_STR, [g + " a", "a b", "ab c"])),
        ("tokenizer.ggml.bos_token_id", T_U32, 0),
        ("tokenizer.ggml.eos_token_id", T_U32, 2),
        ("tokenizer.ggml.add_bos_token", T_BOOL, False),
        ("tokenizer.chat_template", T_STR, "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                                          "<|im_end|>\n{% endfor %}"),
    ]
    write("gguf_reader_fuzz", "gpt2-vocab-v3", gguf(gpt2, [("token_embd.weight", [8, 11], 0, b"\0" * 4 * 88)]))
    spm_tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in (0x0A, 0x20, 0x41, 0xC3, 0xA9)] + \
                 ["\u2581", "\u2581a", "ab", "a", "b"]
    spm = [
        ("general.architecture", T_STR, "llama"),
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, spm_tokens)),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0] * 8 + [-1.0, -2.0, -3.0, -4.0, -5.0])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [2, 3, 3] + [6] * 5 + [1] * 5)),
        ("tokenizer.ggml.add_space_prefix", T_BOOL, True),
        ("tokenizer.ggml.unknown_token_id", T_U32, 0),
    ]
    write("gguf_reader_fuzz", "spm-vocab-v2", gguf(spm, [], version=2))
    every_type = [
        ("u8", T_U8, 7), ("i8", T_I8, -7), ("u16", T_U16, 700), ("i16", T_I16, -700), ("u32", T_U32, 70000),
        ("i32", T_I32, -70000), ("f32", T_F32, 0.5), ("bool", T_BOOL, True), ("str", T_STR, "x"),
        ("u64", T_U64, 2**40), ("i64", T_I64, -2**40), ("f64", T_F64, 0.25),
        ("arr.bool", T_ARR, (T_BOOL, [True, False])), ("arr.i8", T_ARR, (T_I8, [-1, 2])),
        ("arr.u64", T_ARR, (T_U64, [1, 2**63])), ("arr.f64", T_ARR, (T_F64, [1.5])),
        ("arr.str", T_ARR, (T_STR, ["", "y"])), ("general.alignment", T_U64, 64),
    ]
    q8 = b"\0" * 34  # one q8_0 block (32 elements)
    write("gguf_reader_fuzz", "every-type-q8-tensors",
          gguf(every_type, [("a", [32], 8, q8), ("b", [32, 1, 1, 1], 8, q8)], alignment=64))
    write("gguf_reader_fuzz", "header-only", gguf([], []))


# ---- tokenizer -----------------------------------------------------------------------------------
def tokenizer_seeds():
    texts = [
        "Hello world! How are you today?",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "def f(x):\n    return x ** 2  # square\n",
        "caf\u00e9 na\u00efve \u4f60\u597d \U0001F600 \U0001F468\u200d\U0001F469\u200d\U0001F467",
        "12345 3.14159 1e-9 0x1F",
        "  leading\t\ttabs\r\nand\u00a0nbsp\u3000ideographic space\u2028",
        "don't can't I'll we've THEY'RE",
    ]
    for i, t in enumerate(texts):
        for flags in (0x00, 0x01, 0x03, 0x10, 0x11):
            write("tokenizer_fuzz", "text-%d-%02x" % (i, flags), bytes([flags]) + t.encode())
    write("tokenizer_fuzz", "invalid-utf8", b"\x00a\xff\xc3(\xe2\x82\xed\xa0\x80\xf4\x90\x80\x80\xc0\xafz")
    write("tokenizer_fuzz", "ids-real", bytes([0x04]) + struct.pack("<10H", 1, 2, 28, 1000, 49151, 49152, 0, 9, 17, 255))
    write("tokenizer_fuzz", "ids-spm", bytes([0x1d]) + struct.pack("<8H", 1, 2, 3, 200, 227, 228, 260, 300))


# ---- chat template -------------------------------------------------------------------------------
def fdp_string(s):
    return s.replace("\\", "\\\\") + "\\x"  # FuzzedDataProvider: a backslash and another byte end it


def chat_seed(which, add_gen, messages, tools=None):
    """The target's layout: FuzzedDataProvider takes integers and booleans from the end of the input and
    strings from the front. which % 3 picks the real template: SmolLM2, Qwen2.5 with tools, Llama 3.
    messages: (role byte, content, extra) with extra (id, name, arguments) for an assistant's tool call,
    or a tool message's call id."""
    front, end = "", [which, 1 if add_gen else 0]
    end.append(1 if tools is not None else 0)
    if tools is not None:
        front += fdp_string(tools)
    for role_byte, content, extra in messages:
        end.append(role_byte)
        front += fdp_string(content)
        if role_byte % 4 == 2:
            end.append(1 if extra else 0)
            if extra:
                front += "".join(fdp_string(x) for x in extra)
        elif role_byte % 4 == 3:
            front += fdp_string(extra or "")
    return front.encode() + bytes(reversed(end))


def chat_template_seeds():
    conv = [(1, "Hello!", None), (2, "Hi, how can I help?", None), (1, "Tell me a joke.", None)]
    with_sys = [(0, "You are terse.", None), (1, "Hi", None)]
    tool_turn = [(1, "Weather in Paris?", None), (2, "", ("call_1", "get_weather", '{"city": "Paris"}')),
                 (3, "Sunny, 24 C", "call_1")]
    tools = json.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    for which in (129, 130, 131):
        write("chat_template_fuzz", "real-%d" % which, chat_seed(which, True, conv))
        write("chat_template_fuzz", "real-sys-%d" % which, chat_seed(which, False, with_sys))
        write("chat_template_fuzz", "real-tools-%d" % which, chat_seed(which, True, tool_turn, tools=tools))
    write("chat_template_fuzz", "unicode-130", chat_seed(
        130, True, [(1, "Gr\u00fc\u00dfe \U0001F600", None), (2, "", ("c", "f", "{\"a\": [1, {\"b\": null}]}")),
                    (3, "\u4e16\u754c", "c")], tools="[]"))


# ---- tool calls ----------------------------------------------------------------------------------
def tool_calls_seed(hermes, text, seed=7, extra_name=None):
    end = [1 if hermes else 0, 1 if extra_name else 0]
    front = fdp_string(extra_name) if extra_name else ""
    end.append(seed)
    return (front + text).encode() + bytes(reversed(end))


def tool_calls_seeds():
    call = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}'
    write("tool_calls_fuzz", "hermes-one", tool_calls_seed(True, "<tool_call>\n" + call + "\n</tool_call>"))
    write("tool_calls_fuzz", "hermes-two", tool_calls_seed(
        True, "Let me check.\n<tool_call>\n" + call + "\n</tool_call>\n<tool_call>\n"
        '{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>', seed=3))
    write("tool_calls_fuzz", "hermes-bad", tool_calls_seed(True, "<tool_call>{not json}</tool_call> <tool_c", seed=11))
    write("tool_calls_fuzz", "llama", tool_calls_seed(False, '{"name": "add", "parameters": {"a": 1, "b": 2}}'))
    write("tool_calls_fuzz", "llama-tag", tool_calls_seed(
        False, '<|python_tag|>{"name": "add", "parameters": {"a": 1}}; {"name": "get_weather", "arguments": {}}',
        seed=200))
    write("tool_calls_fuzz", "plain", tool_calls_seed(True, "The weather in Paris is sunny. \u00e9\U0001F600"))
    write("tool_calls_fuzz", "extra-name", tool_calls_seed(
        True, '<tool_call>{"name": "f\\u00e9", "arguments": {}}</tool_call>', extra_name="f\u00e9"))


# ---- stop strings --------------------------------------------------------------------------------
def stop_seed(stops, deltas, raw=False):
    head = "".join(fdp_string(s) for s in stops) + "".join(fdp_string(d) for d in deltas)
    return head.encode() + bytes([len(stops), 0 if raw else 200])


def stop_strings_seeds():
    write("stop_strings_fuzz", "simple", stop_seed(["STOP"], ["Hello ", "wor", "ld ST", "OP and more"]))
    write("stop_strings_fuzz", "overlap", stop_seed(["abcd", "bc", "cde"], ["a", "b", "c", "d", "e"]))
    write("stop_strings_fuzz", "unicode", stop_seed(["\u00e9t\u00e9", "\U0001F600"], ["L'\u00e9", "t\u00e9 ", "\U0001F600!"]))
    write("stop_strings_fuzz", "no-match", stop_seed(["\n\n", "User:"], ["line one\n", "line two\nUse", "r said"]))
    write("stop_strings_fuzz", "prefix-held", stop_seed(["aaab"], ["aa", "aa", "aa", "c"]))
    write("stop_strings_fuzz", "raw", stop_seed(["\xff\xfe"], ["\x80\x80\xff", "\xfe"], raw=True))


# ---- HTTP ----------------------------------------------------------------------------------------
def http(method, path, body=None, headers=()):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost:8080"] + list(headers)
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or "")).encode()


def http_seeds():
    model = "SmolLM2-135M-Instruct"
    chat = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Hi!"}],
            "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "stop": ["\n\n", "User:"], "seed": 1,
            "stream": True, "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 2}
    comp = {"model": model, "prompt": "Once upon a time", "max_tokens": 8, "n": 2, "logprobs": 1,
            "logit_bias": {"42": -100, "7": 5.5}, "presence_penalty": 0.5, "frequency_penalty": -0.5,
            "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "ignore_eos": False, "user": "u1"}
    ids = {"prompt": [1, 2, 3, 4], "max_tokens": 4, "echo": False, "best_of": 1, "suffix": ""}
    parts = {"messages": [{"role": "developer", "content": [{"type": "text", "text": "a"},
                                                            {"type": "text", "text": "b"}]},
                          {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
             "prediction": {"type": "content", "content": [{"type": "text", "text": "pred"}]},
             "num_speculative_tokens": 3, "max_completion_tokens": 5, "response_format": {"type": "text"},
             "tools": [], "tool_choice": "none", "parallel_tool_calls": False}
    raw = [
        ("chat-stream", http("POST", "/v1/chat/completions", json.dumps(chat), ["Authorization: Bearer sk-fuzz-0123456789"])),
        ("completions", http("POST", "/v1/completions", json.dumps(comp))),
        ("completions-ids", http("POST", "/v1/completions?x=1", json.dumps(ids), ["Connection: keep-alive"])),
        ("chat-parts", http("POST", "/v1/chat/completions", json.dumps(parts), ["Expect: 100-continue"])),
        ("bad-json", http("POST", "/v1/completions", '{"prompt": "x", "max_tokens": 1e400, }')),
        ("get-models", http("GET", "/v1/models") + http("GET", "/health") + http("GET", "/metrics")),
        ("chunked", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"d\r\n{\"prompt\":\"a\"\r\n1\r\n}\r\n0\r\n\r\n"),
        ("http10", b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"),
    ]
    for name, wire in raw:
        write("http_request_fuzz", name, bytes([0x38]) + wire)  # raw HTTP, whole buffer at once
    write("http_request_fuzz", "chat-trickle", bytes([0x00]) + raw[0][1])  # one byte per read
    bodies = [json.dumps(chat), json.dumps(comp), json.dumps(ids), json.dumps(parts),
              '{"prompt": "x", "max_tokens": 9223372036854775807}',
              '{"messages": [{"role": "user", "content": "\\ud83d\\ude00 \\u0000"}], "n": 16}',
              '{"prompt": [[1, 2]], "stop": "s", "logit_bias": null, "stream": false}',
              json.dumps({"messages": [{"role": "user", "content": "x"}], "response_format": {
                  "type": "json_schema", "json_schema": {"name": "n", "strict": True, "schema": {
                      "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}}),
              json.dumps({"prompt": "x", "guided_regex": "[0-9]{2}", "max_tokens": 4}),
              json.dumps({"prompt": "x", "guided_choice": ["yes", "no"], "guided_grammar": "root ::= \"a\""}),
              json.dumps({"prompt": "x", "structured_outputs": {"json": "{\"type\": \"array\"}"}}),
              json.dumps({"messages": [{"role": "user", "content": "Weather?"}], "tool_choice": "required",
                          "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                          "parallel_tool_calls": False}),
              json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                       {"role": "assistant", "content": None, "tool_calls": [
                                           {"id": "c1", "type": "function",
                                            "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                                       {"role": "tool", "tool_call_id": "c1", "content": "r"}],
                          "tools": [{"type": "function", "function": {"name": "f"}}],
                          "tool_choice": {"type": "function", "function": {"name": "f"}}})]
    for i, b in enumerate(bodies):
        for mode in (0x78, 0x79, 0x7f):  # body to /v1/completions, /v1/chat/completions; chunked + key
            write("http_request_fuzz", "body-%d-%02x" % (i, mode), bytes([mode]) + b.encode())


# ---- gRPC ----------------------------------------------------------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    b = payload.encode() if isinstance(payload, str) else payload
    return key + varint(len(b)) + b


def packed(nums):
    return b"".join(varint(n) for n in nums)


def grpc_seeds():
    sampling = field(1, 5, 0.7) + field(2, 5, 0.9) + field(3, 0, 40) + field(4, 5, 0.05) + field(5, 5, 1.1) + \
        field(6, 5, 0.2) + field(7, 5, -0.2) + field(8, 0, 1234) + field(9, 0, 2)
    stop = field(1, 0, 8) + field(2, 2, "\n\n") + field(2, 2, "User:") + field(3, 2, packed([2, 0])) + field(4, 0, 1)
    chat = field(1, 2, field(1, 2, "system") + field(2, 2, "Be brief.")) + \
        field(1, 2, field(1, 2, "user") + field(2, 2, "Hi!"))
    gen = [
        ("text", field(1, 2, "Once upon a time") + field(4, 2, sampling) + field(5, 2, stop) + field(6, 0, 2)),
        ("ids", field(2, 2, field(1, 2, packed([1, 2, 3, 4]))) + field(5, 2, field(1, 0, 4)) + field(7, 0, 5)),
        ("chat", field(3, 2, chat) + field(8, 2, "req-1") + field(9, 2, "predicted text") + field(11, 0, 3)),
        ("prediction-ids", field(1, 2, "Hi") + field(10, 2, field(1, 2, packed([5, 6, 7])))),
        ("n-zero", field(1, 2, "Hi") + field(6, 0, 0)),
        ("json-schema", field(1, 2, "Hi") + field(12, 2, '{"type": "object", "properties": {"a": {"type": "integer"}}}')),
        ("json-object", field(1, 2, "Hi") + field(13, 0, 1)),
        ("regex", field(1, 2, "Hi") + field(14, 2, "[a-z]{1,3}")),
        ("choice", field(1, 2, "Hi") + field(15, 2, field(1, 2, "yes") + field(1, 2, "no"))),
        ("grammar", field(1, 2, "Hi") + field(16, 2, 'root ::= "(" [0-9]+ ")"')),
    ]
    for name, msg in gen:
        write("grpc_request_fuzz", "generate-" + name, b"\x00" + msg)
    write("grpc_request_fuzz", "tokenize-text", b"\x02" + field(1, 2, "<|im_start|>Hello") + field(3, 0, 1) + field(4, 0, 1))
    write("grpc_request_fuzz", "tokenize-chat", b"\x02" + field(2, 2, chat))
    write("grpc_request_fuzz", "detokenize", b"\x03" + field(1, 2, packed([1, 2, 28, 49151, 2**31 - 1])) + field(2, 0, 1))
    # Structured mode (byte 0 is 4..7 mod 8): the message is built field by field from the rest.
    write("grpc_request_fuzz", "structured-counting", b"\x04" + bytes(range(96)))
    write("grpc_request_fuzz", "structured-high", b"\x07" + bytes(range(255, 127, -1)))


def main():
    for target in ("gguf_reader_fuzz", "tokenizer_fuzz", "chat_template_fuzz", "stop_strings_fuzz",
                   "http_request_fuzz", "tool_calls_fuzz", "grpc_request_fuzz"):
        shutil.rmtree(os.path.join(OUT, target), ignore_errors=True)
    gguf_seeds()
    tokenizer_seeds()
    chat_template_seeds()
    tool_calls_seeds()
    stop_strings_seeds()
    http_seeds()
    grpc_seeds()


if __name__ == "__main__":
    main()
