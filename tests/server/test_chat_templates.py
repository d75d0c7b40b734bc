"""Chat templates: Pagoda's Jinja engine (llama.cpp's, engine/tokenizer/chat_template.cpp) against Python's
jinja2 set up as transformers' apply_chat_template sets it up (the reference renderer). Every real template
of llama.cpp's collection (models/templates in the llama-cpp-python sdist the build fetches: Qwen2.5/3,
Llama 3.x, Mistral, Phi-3.5, Gemma, Hermes, DeepSeek, Granite, gpt-oss ...) and the model's own, on plain,
system, multi-turn, tool-definition and tool-call/tool-result conversations, rendered by `pagoda
chat-template`: where jinja2 renders, the text must be identical.

Where jinja2 raises (a template's raise_exception, or an undefined variable jinja2 is strict about),
llama.cpp's engine may still render (it is lenient by design): those cases are counted, not failed."""
import datetime
import functools
import glob
import json
import os
import pathlib
import subprocess

import pytest

from conftest import MODEL, PAGODA_CLI, REPO

jinja2 = pytest.importorskip("jinja2")
from jinja2 import nodes  # noqa: E402
from jinja2.ext import Extension, loopcontrols  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402


def templates_dir() -> pathlib.Path:
    env = os.environ.get("PAGODA_CHAT_TEMPLATES")  # set by CMake for ctest
    if env:
        return pathlib.Path(env)
    found = glob.glob(str(REPO / "build" / "_deps" / "llama_jinja-src" / "*" / "vendor" / "llama.cpp" / "models" / "templates"))
    if not found:
        pytest.skip("llama.cpp's templates not unpacked (configure the build: cmake/llama_jinja.cmake)")
    return pathlib.Path(found[0])


# Templates whose jinja2 rendering depends on jinja2 behaviour that is not the template language itself.
KNOWN_DIFFERENT = {
    # Concatenates `"..."|safe` with plain strings: markupsafe then HTML-escapes the plain parts (&#34;),
    # which transformers' sandbox inherits by accident; llama.cpp's engine has no autoescaping.
    "meetkai-functionary-medium-v3.1.jinja",
}


class AssistantTracker(Extension):
    """transformers' {% generation %} ... {% endgeneration %} (marks assistant text): renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


@functools.lru_cache(maxsize=None)
def reference_template(source: str):
    """transformers' _compile_jinja_template: sandboxed, trim_blocks + lstrip_blocks, loop controls, its
    tojson (json.dumps, key order kept, no ASCII escaping), raise_exception and strftime_now."""

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(source)


def render_reference(source: str, **inputs) -> str:
    return reference_template(source).render(**inputs)


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}]

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"}],
    "multi_turn": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                   {"role": "user", "content": "And 3+3? Answer with \"quotes\" & <tags>\n\ttoo."}],
    "unicode": [{"role": "user", "content": "Grüße, 世界! 👋 ¿qué tal?"}],
    "tools": [{"role": "user", "content": "Weather in Paris?"}],
    "tool_turn": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"c\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"}],
}
WITH_TOOLS = {"tools", "tool_turn"}


def cli(*args, check=True) -> subprocess.CompletedProcess:
    if not os.path.exists(PAGODA_CLI):
        pytest.skip(f"pagoda CLI not built at {PAGODA_CLI} (set PAGODA_CLI)")
    return subprocess.run([PAGODA_CLI, "chat-template", *args], capture_output=True, timeout=60, check=check)


@functools.lru_cache(maxsize=None)
def _caps(template_args: tuple) -> dict:
    return json.loads(cli(*template_args, "--caps").stdout)


def caps_of(template_args) -> dict:
    return _caps(tuple(template_args))


def render_both(template_args, source, cases, tmp_path, bos="<s>", eos="</s>"):
    """For each case (name, messages, tools, add_generation_prompt): (jinja2's text or None if it raised,
    Pagoda's text or None if it failed). Pagoda renders every case in one `--cases` run."""
    caps = caps_of(template_args)
    (tmp_path / "cases.json").write_text(json.dumps(
        [{"messages": m, "tools": t, "add_generation_prompt": g} for _, m, t, g in cases]))
    outs = json.loads(cli(*template_args, "--cases", str(tmp_path / "cases.json")).stdout)
    assert len(outs) == len(cases)
    results = []
    for (name, messages, tools, gen), out in zip(cases, outs):
        ref_messages = json.loads(json.dumps(messages))
        if caps["supports_object_arguments"]:  # what Pagoda hands such a template (and vLLM does too)
            for m in ref_messages:
                for c in m.get("tool_calls") or []:
                    c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        inputs = {"messages": ref_messages, "bos_token": bos, "eos_token": eos, "add_generation_prompt": gen}
        if tools:
            inputs["tools"] = tools
        try:
            ref = render_reference(source, **inputs)
        except Exception:  # noqa: BLE001 - any jinja2 failure: the template refuses this conversation
            ref = None
        results.append((ref, out.get("text")))
    return results


def cases_for(caps):
    out = []
    for name, messages in CONVERSATIONS.items():
        if name in WITH_TOOLS and not caps["supports_tools"]:
            continue
        for gen in (True, False) if name == "multi_turn" else (True,):
            out.append((name, messages, TOOLS if name in WITH_TOOLS else None, gen))
    return out


def test_every_template_of_the_collection_matches_jinja2(tmp_path):
    paths = sorted(templates_dir().glob("*.jinja"))
    assert len(paths) >= 40, f"expected llama.cpp's template collection in {templates_dir()}"
    compared = lenient = 0
    mismatches = []
    for path in paths:
        if path.name in KNOWN_DIFFERENT:
            continue
        targs = ["--template", str(path), "--bos", "<s>", "--eos", "</s>"]
        cases = cases_for(caps_of(targs))
        for (name, _, _, gen), (ref, out) in zip(cases, render_both(targs, path.read_text(), cases, tmp_path)):
            if ref is None:
                lenient += out is not None
                continue
            compared += 1
            if ref != out:
                i = next((k for k in range(min(len(ref), len(out or ""))) if ref[k] != out[k]), None)
                mismatches.append(f"{path.name} [{name}, generation prompt {gen}] first difference at {i}:\n"
                                  f"  jinja2: {ref[max(0, (i or 0) - 60):(i or 0) + 80]!r}\n"
                                  f"  pagoda: {(out or '')[max(0, (i or 0) - 60):(i or 0) + 80]!r}")
    print(f"{compared} renderings identical to jinja2's; {lenient} rendered where jinja2 raised")
    assert not mismatches, f"{len(mismatches)} of {compared} renderings differ:\n" + "\n".join(mismatches)
    assert compared >= 250


# The families the issue names: each must render every conversation it supports (no silent leniency).
FAMILIES = ["Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja",
            "meta-llama-Llama-3.2-3B-Instruct.jinja", "microsoft-Phi-3.5-mini-instruct.jinja",
            "google-gemma-2-2b-it.jinja", "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "HuggingFaceTB-SmolLM3-3B.jinja"]


@pytest.mark.parametrize("name", FAMILIES)
def test_supported_families_render_like_jinja2(name, tmp_path):
    path = templates_dir() / name
    source = path.read_text()
    targs = ["--template", str(path), "--bos", "<s>", "--eos", "</s>"]
    caps = caps_of(targs)
    cases = [c for c in cases_for(caps) if not (c[0] == "system" and not caps["supports_system_role"])]
    rendered = 0
    for (conv, _, _, _), (ref, out) in zip(cases, render_both(targs, path.read_text(), cases, tmp_path)):
        if ref is None and out is None:
            continue  # the template refuses this conversation (e.g. Mistral's call ids of 9 characters)
        assert ref == out, f"{name} [{conv}]"
        rendered += 1
    assert rendered >= 3


def test_model_template_matches_jinja2(tmp_path):
    """The served model's own template, BOS and EOS, as the CLI reads them from the GGUF."""
    if not os.path.exists(MODEL):
        pytest.skip(f"model not found at {MODEL}")
    info = caps_of(["--model", MODEL])
    cases = [(c, CONVERSATIONS[c], None, g) for c in ("user", "system", "multi_turn", "unicode") for g in (True, False)]
    results = render_both(["--model", MODEL], info["source"], cases, tmp_path, bos=info["bos_token"],
                          eos=info["eos_token"])
    for (conv, _, _, gen), (ref, out) in zip(cases, results):
        assert ref is not None and ref == out, (conv, gen)


def _write(tmp_path, messages) -> str:
    p = tmp_path / "m.json"
    p.write_text(json.dumps(messages))
    return str(p)


def test_cli_reports_bad_input(tmp_path):
    if not os.path.exists(MODEL):
        pytest.skip(f"model not found at {MODEL}")
    (tmp_path / "bad.json").write_text("{not json")
    p = cli("--model", MODEL, "--messages", str(tmp_path / "bad.json"), check=False)
    assert p.returncode == 2 and b"--messages" in p.stderr
    (tmp_path / "raise.jinja").write_text("{{ raise_exception('no system role here') }}")
    p = cli("--template", str(tmp_path / "raise.jinja"), "--messages", _write(tmp_path, CONVERSATIONS["user"]),
            check=False)
    assert p.returncode == 1 and b"no system role here" in p.stderr
