"""Tool calling (issue 14) on the real model through the `openai` SDK: `tools` with tool_choice "required",
a named function, "auto" and "none"; parallel_tool_calls; streamed `delta.tool_calls`; a multi-turn
conversation with `tool` messages; bad tools get a 400 naming the field and the daemon keeps serving.

SmolLM2's template knows no tools, so the server writes them into the system message in the Hermes format
(Qwen2.5's wording) and parses `<tool_call>` blocks back; "required" and named choices are enforced by a
grammar, so every call's arguments validate against the function's schema (checked with `jsonschema`)."""
import json
import subprocess

import pytest

from conftest import MODEL, PAGODA_CLI, REAL_MODEL

jsonschema = pytest.importorskip("jsonschema")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "maxLength": 20},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers",
    "parameters": {"type": "object",
                   "properties": {"a": {"type": "integer", "minimum": -1000, "maximum": 1000},
                                  "b": {"type": "integer", "minimum": -1000, "maximum": 1000}},
                   "required": ["a", "b"], "additionalProperties": False}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web",
    "parameters": {"type": "object",
                   "properties": {"query": {"type": "string", "maxLength": 30},
                                  "max_results": {"type": "integer", "minimum": 1, "maximum": 10},
                                  "filters": {"type": "array", "maxItems": 2,
                                              "items": {"type": "string", "enum": ["news", "images", "video"]}}},
                   "required": ["query"], "additionalProperties": False}}}
TOOLS = [WEATHER, ADD, SEARCH]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
QUESTIONS = ["What is the weather like in Paris today?", "What is 17 plus 25?", "Find recent news about volcanoes.",
             "Is it going to rain in Tokyo?", "Add 3 and 4 for me."]


def check_calls(calls, allowed=None):
    assert calls, "no tool calls"
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in (allowed or SCHEMAS)
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, SCHEMAS[call.function.name])
    assert len({c.id for c in calls}) == len(calls)


def chat(daemon, question, **kw):
    kw.setdefault("max_tokens", 160)
    return daemon.openai_client().chat.completions.create(
        model=daemon.model_id, messages=[{"role": "user", "content": question}], tools=kw.pop("tools", TOOLS), **kw)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_required_returns_valid_calls(daemon, temperature):
    for q in QUESTIONS:
        r = chat(daemon, q, tool_choice="required", temperature=temperature, seed=7)
        choice = r.choices[0]
        if not REAL_MODEL and choice.finish_reason == "length":
            continue  # a random-weight model need not close its call inside max_tokens
        assert choice.finish_reason == "tool_calls", (q, choice)
        assert choice.message.content is None
        check_calls(choice.message.tool_calls)


def test_named_function_is_the_one_called(daemon):
    for q in QUESTIONS[:3]:
        r = chat(daemon, q, tool_choice={"type": "function", "function": {"name": "add"}}, temperature=0)
        if not REAL_MODEL and r.choices[0].finish_reason == "length":
            continue
        check_calls(r.choices[0].message.tool_calls, allowed={"add"})


def test_parallel_tool_calls_false_gives_one_call(daemon):
    r = chat(daemon, "Weather in Paris and in Rome?", tool_choice="required", parallel_tool_calls=False, temperature=0)
    if not REAL_MODEL and r.choices[0].finish_reason == "length":
        pytest.skip("random-weight model")
    assert len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message.tool_calls)


def test_streamed_calls_equal_the_non_streamed_ones(daemon):
    for q in QUESTIONS[:3]:
        whole = chat(daemon, q, tool_choice="required", temperature=0)
        stream = chat(daemon, q, tool_choice="required", temperature=0, stream=True)
        calls, finish, content = {}, None, ""
        for chunk in stream:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": tc.id, "name": "", "arguments": ""})
                c["name"] += tc.function.name or ""
                c["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        expected = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                    for c in whole.choices[0].message.tool_calls or []]
        # Ids are per response; the rest is the same greedy output.
        assert [(c["name"], c["arguments"]) for _, c in sorted(calls.items())] == \
            [(c["name"], c["arguments"]) for c in expected]
        assert finish == whole.choices[0].finish_reason
        assert finish == "tool_calls" or not REAL_MODEL  # not two runs that both ran out of tokens
        assert content == ""


def test_n_choices_each_call(daemon):
    r = chat(daemon, QUESTIONS[0], tool_choice="required", n=3, temperature=1.0, seed=3)
    assert len(r.choices) == 3
    for choice in r.choices:
        if choice.finish_reason == "length" and not REAL_MODEL:
            continue
        check_calls(choice.message.tool_calls)


def test_auto_is_free_text_or_valid_calls(daemon):
    for q in QUESTIONS[:3]:
        r = chat(daemon, q, tool_choice="auto", temperature=0, max_tokens=60)
        m = r.choices[0].message
        if m.tool_calls:
            check_calls(m.tool_calls)
            assert r.choices[0].finish_reason == "tool_calls"
        else:
            assert m.content and "<tool_call>" not in m.content


def test_none_is_the_same_as_no_tools(daemon):
    client = daemon.openai_client()
    msgs = [{"role": "user", "content": "Name three colors."}]
    plain = client.chat.completions.create(model=daemon.model_id, messages=msgs, max_tokens=24, temperature=0)
    none = client.chat.completions.create(model=daemon.model_id, messages=msgs, max_tokens=24, temperature=0, tools=TOOLS,
                                          tool_choice="none")
    assert none.choices[0].message.content == plain.choices[0].message.content
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens
    assert none.choices[0].message.tool_calls is None


def hermes_tools_block(tools):
    block = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
             "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
    for t in tools:
        fn = {"name": t["function"]["name"]}
        if "description" in t["function"]:
            fn["description"] = t["function"]["description"]
        fn["parameters"] = t["function"].get("parameters", {"type": "object"})
        block += "\n" + json.dumps({"type": "function", "function": fn}, separators=(",", ":"), ensure_ascii=False)
    return block + ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
                    "\"arguments\": <args-json-object>}\n</tool_call>")


def hermes_prompt(messages, tools):
    """The prompt the server must build for a template without tools (openai_tools.cpp), in Python:
    the tools (None: not shown) in the system message, calls as <tool_call> blocks, results as a user turn."""
    out = []
    rest = messages
    if tools is not None:
        block = hermes_tools_block(tools)
        if messages[0]["role"] == "system":
            out.append({"role": "system", "content": messages[0]["content"] + "\n\n" + block})
            rest = messages[1:]
        else:
            out.append({"role": "system", "content": block})
    prev = None
    for m in rest:
        if m["role"] == "tool":
            resp = "<tool_response>\n" + m["content"] + "\n</tool_response>"
            if prev == "tool":
                out[-1]["content"] += "\n" + resp
            else:
                out.append({"role": "user", "content": resp})
        elif m.get("tool_calls"):
            text = m.get("content") or ""
            for c in m["tool_calls"]:
                call = {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                text += ("\n" if text else "") + "<tool_call>\n" + json.dumps(call, separators=(",", ":")) + \
                    "\n</tool_call>"
            out.append({"role": "assistant", "content": text})
        else:
            out.append({"role": m["role"], "content": m["content"]})
        prev = m["role"]
    return out


def test_multi_turn_with_tool_messages_renders_and_continues(daemon, tmp_path):
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "What is the weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "Sunny, 24 C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "Rain, 18 C"},
    ]
    r = daemon.openai_client().chat.completions.create(model=daemon.model_id, messages=messages, tools=TOOLS, max_tokens=40,
                                                       temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r.choices[0].message.content or r.choices[0].message.tool_calls
    # The prompt is exactly the Hermes rewrite rendered by the model's template: its token count matches.
    expected = hermes_prompt(messages, TOOLS)
    (tmp_path / "m.json").write_text(json.dumps(expected))
    text = subprocess.run([PAGODA_CLI, "chat-template", "--model", MODEL, "--messages", str(tmp_path / "m.json")],
                          check=True, capture_output=True, timeout=60).stdout.decode()
    assert "<tool_response>\nSunny, 24 C\n</tool_response>\n<tool_response>\nRain, 18 C\n</tool_response>" in text
    assert r.usage.prompt_tokens == prompt_tokens(text)

    # tool_choice "none": no tools shown, but the earlier calls and results still read as Hermes turns.
    r = daemon.openai_client().chat.completions.create(model=daemon.model_id, messages=messages, tools=TOOLS,
                                                       tool_choice="none", max_tokens=4, temperature=0)
    (tmp_path / "m.json").write_text(json.dumps(hermes_prompt(messages, None)))
    text = subprocess.run([PAGODA_CLI, "chat-template", "--model", MODEL, "--messages", str(tmp_path / "m.json")],
                          check=True, capture_output=True, timeout=60).stdout.decode()
    assert "<|im_start|>tool" not in text and "# Tools" not in text
    assert r.usage.prompt_tokens == prompt_tokens(text)


def prompt_tokens(text):
    return len(subprocess.run([PAGODA_CLI, "tokenize", "--model", MODEL, "--add-special", "--prompt", text],
                              check=True, capture_output=True, timeout=60).stdout.split())


BAD = [
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools", "function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}, "tools", "JSON schema"),
    ({"tools": [{"type": "retrieval"}]}, "tools", "must be \"function\""),
    ({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]},
     "tools", "twice"),
    ({"tools": "get_weather"}, "tools", "array"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice",
     "not in 'tools'"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "required"),
    ({"tool_choice": "required"}, "tool_choice", "needs 'tools'"),
    ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format", "cannot be combined"),
    ({"tools": [WEATHER], "ignore_eos": True}, "ignore_eos", "ignore_eos"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}}}], "tool_choice": "required"},
     "tools", "does not compile"),
    ({"functions": [{"name": "f"}]}, "functions", "deprecated"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages", "tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]}, "messages",
     "function"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages", "not supported"),
]


@pytest.mark.parametrize("extra,param,words", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_tools_are_400s_naming_the_field(daemon, extra, param, words):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    status, data = daemon.post_json("/v1/chat/completions", body)
    assert status == 400, data
    err = data["error"]
    assert err["param"] == param and words in err["message"], err
    # ... and the daemon goes on serving.
    r = daemon.openai_client().chat.completions.create(model=daemon.model_id, messages=[{"role": "user", "content": "hi"}],
                                                       max_tokens=2)
    assert r.choices[0].finish_reason in ("stop", "length")
