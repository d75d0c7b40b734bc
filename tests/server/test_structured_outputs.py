"""Structured outputs (constrained decoding, issue 14) through both front ends on the real model: JSON
schemas (OpenAI's `response_format`, vLLM's `guided_json` / `structured_outputs`), regex, choice and EBNF
grammars, greedy and sampled, streaming and not, one at a time and 32 at once; the `openai` SDK's
`chat.completions.parse` with a Pydantic model; gRPC's `constraint`; bad grammars get a 400 naming the
field; unconstrained requests that share steps with constrained ones are token-identical to running alone.
Every JSON output is validated with `jsonschema` (formats included)."""
import ast
import concurrent.futures
import json
import re
import tempfile

import grpc
import pytest

from conftest import REAL_MODEL, grpc_stubs

# scripts/setup.sh installs it; a machine without it (the GPU check's) skips this file, not the suite.
jsonschema = pytest.importorskip("jsonschema")
# A random-weight model (the GPU check's) need not end an unbounded grammar (an email, a nested EBNF
# expression) inside max_tokens: the sweeps that require every output to finish need the real model.
needs_real_model = pytest.mark.skipif(not REAL_MODEL, reason="a random-weight model need not finish the grammar")

MAX_TOKENS = 320


def s(maxlen=12, **kw):
    return {"type": "string", "maxLength": maxlen, **kw}


def obj(props, required=None, **kw):
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": False, **kw}


# 32 schemas: nested objects, arrays with bounds, enums, anyOf, string patterns and formats, numbers
# with ranges. Free strings carry a maxLength so that every output completes inside MAX_TOKENS.
SCHEMAS = [
    obj({"name": s()}),
    obj({"age": {"type": "integer", "minimum": 0, "maximum": 120}}),
    obj({"price": {"type": "number", "minimum": 0, "maximum": 1000}}),
    obj({"ok": {"type": "boolean"}, "note": {"type": "null"}}),
    obj({"color": {"enum": ["red", "green", "blue"]}}),
    obj({"size": {"type": "string", "enum": ["S", "M", "L", "XL"]}, "count": {"type": "integer", "minimum": 1, "maximum": 9}}),
    obj({"tags": {"type": "array", "items": s(8), "minItems": 1, "maxItems": 3}}),
    obj({"scores": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10}, "minItems": 2, "maxItems": 4}}),
    obj({"point": obj({"x": {"type": "integer", "minimum": -50, "maximum": 50}, "y": {"type": "integer", "minimum": -50, "maximum": 50}})}),
    obj({"user": obj({"name": s(), "address": obj({"city": s(), "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})})}),
    obj({"id": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}}),
    obj({"phone": {"type": "string", "pattern": "^\\+?[0-9]{3}-[0-9]{3}-[0-9]{4}$"}}),
    obj({"email": {"type": "string", "format": "email", "maxLength": 40}}),
    obj({"day": {"type": "string", "format": "date"}}),
    obj({"uid": {"type": "string", "format": "uuid"}}),
    obj({"ip": {"type": "string", "format": "ipv4"}}),
    obj({"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, s(6)]}}),
    obj({"shape": {"anyOf": [obj({"kind": {"const": "circle"}, "r": {"type": "integer", "minimum": 1, "maximum": 9}}),
                             obj({"kind": {"const": "square"}, "side": {"type": "integer", "minimum": 1, "maximum": 9}})]}}),
    obj({"status": {"const": "done"}, "code": {"type": "integer", "minimum": 200, "maximum": 599}}),
    obj({"items": {"type": "array", "minItems": 1, "maxItems": 3,
                   "items": obj({"sku": {"type": "string", "pattern": "^[a-z]{2}[0-9]{2}$"}, "qty": {"type": "integer", "minimum": 1, "maximum": 5}})}}),
    obj({"matrix": {"type": "array", "minItems": 2, "maxItems": 2,
                    "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 9}}}}),
    obj({"title": s(20), "year": {"type": "integer", "minimum": 1900, "maximum": 2030}, "genres": {"type": "array", "items": {"enum": ["drama", "comedy", "horror"]}, "maxItems": 2}}),
    obj({"temperature": {"type": "number", "minimum": -40, "maximum": 50}, "unit": {"enum": ["C", "F"]}}),
    obj({"name": s(), "nickname": s()}, required=["name"]),
    obj({"flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3}}),
    obj({"meta": obj({"version": {"type": "string", "pattern": "^[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}$"},
                      "stable": {"type": "boolean"}})}),
    obj({"level": {"type": "integer", "enum": [1, 2, 3]}, "label": s(10)}),
    obj({"ratio": {"type": "number", "minimum": 0, "maximum": 1}, "percent": {"type": "integer", "minimum": 0, "maximum": 100}}),
    obj({"answer": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}}),
    obj({"pair": {"type": "array", "prefixItems": [s(6), {"type": "integer", "minimum": 0, "maximum": 99}], "items": False,
                  "minItems": 2, "maxItems": 2}}),
    obj({"when": {"type": "string", "format": "date"}, "where": obj({"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                                     "lon": {"type": "number", "minimum": -180, "maximum": 180}})}),
    obj({"steps": {"type": "array", "minItems": 1, "maxItems": 3, "items": obj({"n": {"type": "integer", "minimum": 1, "maximum": 9}, "text": s(10)})}}),
]
assert len(SCHEMAS) >= 30

FORMATS = jsonschema.FormatChecker()


def messages(schema):
    return [{"role": "user", "content": "Reply with a JSON object that follows this schema: " + json.dumps(schema)}]


def check_json(text, schema, finish):
    assert finish == "stop", f"finish {finish!r} (the grammar must complete within {MAX_TOKENS} tokens): {text!r}"
    value = json.loads(text)
    jsonschema.validate(value, schema, format_checker=FORMATS)
    return value


def chat_json(client, model, schema, stream, sampled, seed=0, **kw):
    args = dict(model=model, messages=messages(schema), max_tokens=MAX_TOKENS,
                response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
                temperature=1.0 if sampled else 0, seed=seed, stream=stream, **kw)
    if not stream:
        r = client.chat.completions.create(**args)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for chunk in client.chat.completions.create(**args):
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish


@pytest.fixture(scope="module")
def client(daemon):
    return daemon.openai_client(timeout=600)


@needs_real_model
def test_every_schema_greedy_and_sampled_one_at_a_time(daemon, client):
    for i, schema in enumerate(SCHEMAS):
        # Greedy without streaming, sampled with: the two paths and both kinds of draw.
        text, finish = chat_json(client, daemon.model_id, schema, stream=False, sampled=False)
        check_json(text, schema, finish)
        text, finish = chat_json(client, daemon.model_id, schema, stream=True, sampled=True, seed=i)
        check_json(text, schema, finish)


@needs_real_model
def test_every_schema_32_at_once_streaming_and_not(daemon, client):
    # 64 requests, every schema twice: streaming or not and greedy or sampled, mixed.
    jobs = [(schema, k % 2 == 0, k % 3 == 0, k) for k, schema in enumerate(SCHEMAS + SCHEMAS)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(chat_json, client, daemon.model_id, schema, stream, sampled, seed)
                   for schema, stream, sampled, seed in jobs]
        for (schema, _, _, _), f in zip(jobs, futures):
            text, finish = f.result()
            check_json(text, schema, finish)


def test_json_object_and_vllm_spellings(daemon, client):
    r = client.chat.completions.create(model=daemon.model_id, messages=[{"role": "user", "content": "Describe a cat as JSON."}],
                                       max_tokens=MAX_TOKENS, temperature=0, response_format={"type": "json_object"})
    # json_object: any object; free strings may run long, so only a finished answer must parse.
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:
        assert r.choices[0].message.content.startswith("{")
    schema = SCHEMAS[5]
    for extra in ({"guided_json": schema}, {"guided_json": json.dumps(schema)}, {"structured_outputs": {"json": schema}}):
        r = client.completions.create(model=daemon.model_id, prompt="A T-shirt order as JSON:", max_tokens=MAX_TOKENS,
                                      temperature=0, extra_body=extra)
        check_json(r.choices[0].text, schema, r.choices[0].finish_reason)


@needs_real_model
@pytest.mark.parametrize("sampled", [False, True])
def test_regex_choice_and_grammar(daemon, client, sampled):
    def complete(prompt, seed, **extra):
        r = client.completions.create(model=daemon.model_id, prompt=prompt, max_tokens=64, seed=seed,
                                      temperature=1.0 if sampled else 0, extra_body=extra)
        assert r.choices[0].finish_reason == "stop", r.choices[0]
        return r.choices[0].text

    for seed in range(6):
        pattern = r"[0-9]{3}-[0-9]{2}-[0-9]{4}"
        assert re.fullmatch(pattern, complete("A social security number:", seed, guided_regex=pattern))
        pattern = r"(Mon|Tue|Wed|Thu|Fri) [0-2][0-9]:[0-5][0-9]"
        assert re.fullmatch(pattern, complete("The meeting is on", seed, structured_outputs={"regex": pattern}))
        choices = ["positive", "negative", "neutral (mixed)"]
        assert complete("Sentiment of 'I loved it':", seed, guided_choice=choices) in choices
        assert complete("Pick one:", seed, structured_outputs={"choice": choices}) in choices
        grammar = 'root ::= expr\nexpr ::= term (("+" | "-" | "*") term){0,3}\nterm ::= [1-9] [0-9]{0,2} | "(" expr ")"'
        text = complete("An arithmetic expression:", seed, guided_grammar=grammar)
        assert re.fullmatch(r"[0-9+\-*() ]+", text), text
        ast.parse(text, mode="eval")  # it parses (as Python: the grammar is a subset)


def test_sdk_parse_with_a_pydantic_model(daemon, client):
    from typing import Literal

    from pydantic import BaseModel, Field

    class Step(BaseModel):
        n: int = Field(ge=1, le=9)
        text: str = Field(max_length=12)

    class Plan(BaseModel):
        goal: str = Field(max_length=20)
        priority: Literal["low", "high"]
        steps: list[Step] = Field(min_length=1, max_length=3)

    r = client.chat.completions.parse(model=daemon.model_id, response_format=Plan, max_tokens=MAX_TOKENS, temperature=0,
                                      messages=[{"role": "user", "content": "Plan a picnic."}])
    assert r.choices[0].finish_reason == "stop"
    plan = r.choices[0].message.parsed
    assert isinstance(plan, Plan) and 1 <= len(plan.steps) <= 3


@needs_real_model
def test_unconstrained_requests_are_token_identical_next_to_constrained_ones(daemon, client):
    prompts = ["The capital of France is", "def fibonacci(n):", "List three uses of copper:", "Once upon a time,"]

    def plain(p):
        r = client.completions.create(model=daemon.model_id, prompt=p, max_tokens=48, temperature=0, logprobs=0)
        return r.choices[0].text, r.choices[0].logprobs.token_logprobs

    alone = [plain(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        constrained = [pool.submit(chat_json, client, daemon.model_id, SCHEMAS[k % len(SCHEMAS)], k % 2 == 0, True, k)
                       for k in range(16)]
        mixed = [pool.submit(plain, p) for p in prompts]
        assert [m.result() for m in mixed] == alone
        for k, f in enumerate(constrained):
            text, finish = f.result()
            check_json(text, SCHEMAS[k % len(SCHEMAS)], finish)


def test_drafts_the_grammar_forbids_are_not_accepted(daemon, client):
    # A prediction that breaks the schema (drafts are copied from it): the drafts are verified and
    # refused, the output still validates and equals the one without a prediction.
    schema = SCHEMAS[1]
    plain, _ = chat_json(client, daemon.model_id, schema, stream=False, sampled=False)
    bad = '{"age": "old", "name": 1}' * 4
    r = client.chat.completions.create(
        model=daemon.model_id, messages=messages(schema), max_tokens=MAX_TOKENS, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        extra_body={"prediction": {"type": "content", "content": bad}, "num_speculative_tokens": 4})
    text = r.choices[0].message.content
    check_json(text, schema, r.choices[0].finish_reason)
    assert text == plain
    details = r.usage.completion_tokens_details
    assert details.rejected_prediction_tokens > 0, details  # drafts were made, and refused


def test_json_keys_come_in_the_schemas_order(daemon, client):
    # The body is parsed into a sorted object; the schema must reach the grammar as the client wrote it.
    schema = obj({"zeta": {"type": "integer", "minimum": 0, "maximum": 9}, "alpha": s(6), "mid": {"type": "boolean"}})
    for as_text in (False, True):
        extra = {"guided_json": json.dumps(schema) if as_text else schema}
        r = client.completions.create(model=daemon.model_id, prompt="JSON:", max_tokens=MAX_TOKENS, temperature=0,
                                      extra_body=extra)
        check_json(r.choices[0].text, schema, r.choices[0].finish_reason)
        keys = [k for k, _ in json.loads(r.choices[0].text, object_pairs_hook=list)]
        assert keys == ["zeta", "alpha", "mid"], r.choices[0].text


def test_n_choices_each_follow_the_grammar(daemon, client):
    schema = SCHEMAS[21]
    r = client.chat.completions.create(
        model=daemon.model_id, messages=messages(schema), max_tokens=MAX_TOKENS, temperature=1.0, seed=3, n=3,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    assert len(r.choices) == 3
    for c in r.choices:
        check_json(c.message.content, schema, c.finish_reason)


@pytest.mark.parametrize("extra,param", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}, "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"response_format": {"type": "json_object", "schema": {}}}, "response_format"),
    ({"guided_json": "{not json"}, "guided_json"),
    ({"guided_json": 7}, "guided_json"),
    ({"guided_regex": "([a-z"}, "guided_regex"),
    ({"guided_grammar": "root ::= "}, "guided_grammar"),
    ({"guided_grammar": "root ::= missing_rule"}, "guided_grammar"),
    ({"guided_choice": []}, "guided_choice"),
    ({"guided_choice": ["a", ""]}, "guided_choice"),
    ({"guided_choice": ["a"] * 1025}, "guided_choice"),
    ({"guided_regex": "[0-9]+", "guided_choice": ["a"]}, "guided_choice"),
    ({"structured_outputs": {"regex": "a", "choice": ["b"]}}, "structured_outputs"),
    ({"structured_outputs": {"yaml": "x"}}, "structured_outputs"),
    ({"guided_regex": "[0-9]+", "ignore_eos": True}, "ignore_eos"),
])
def test_bad_grammars_get_a_400_naming_the_field(daemon, extra, param):
    body = {"model": daemon.model_id, "prompt": "x", "max_tokens": 4, **extra}
    status, err = daemon.post_json("/v1/completions", body)
    assert status == 400, err
    assert err["error"]["param"] == param, err
    assert err["error"]["message"] and ".cc:" not in err["error"]["message"], err
    status, ok = daemon.post_json("/v1/completions", {"model": daemon.model_id, "prompt": "x", "max_tokens": 2})
    assert status == 200  # still serving


def test_grpc_constraints(daemon, tmp_path):
    m = grpc_stubs(str(tmp_path))
    pb2, pb2_grpc = m["pagoda_pb2"], m["pagoda_pb2_grpc"]
    schema = SCHEMAS[19]
    with grpc.insecure_channel(f"127.0.0.1:{daemon.grpc_port}") as ch:
        stub = pb2_grpc.GenerationStub(ch)

        def run(seed, must_finish=True, **constraint):
            req = pb2.GenerateRequest(text="An order as JSON:", **constraint)
            req.stop.max_tokens = MAX_TOKENS
            req.sampling.temperature = 0.8
            req.sampling.seed = seed
            text, finish = "", None
            for msg in stub.Generate(req, timeout=600):
                text += msg.text
                if msg.finish_reason:
                    finish = msg.finish_reason
            assert finish == pb2.FINISH_REASON_STOP or not must_finish, text
            return text if must_finish else (text, finish)

        for seed in range(3):
            jsonschema.validate(json.loads(run(seed, json_schema=json.dumps(schema))), schema, format_checker=FORMATS)
            text, finish = run(seed, must_finish=False, json_object=True)  # free strings may run to max_tokens
            assert text.startswith("{")
            if finish == pb2.FINISH_REASON_STOP:
                assert isinstance(json.loads(text), dict)
            assert re.fullmatch(r"[a-f]{4}", run(seed, regex="[a-f]{4}"))
            assert run(seed, choice=pb2.Choices(choices=["alpha", "beta"])) in ("alpha", "beta")
            assert re.fullmatch(r"\([0-9]+\)", run(seed, grammar='root ::= "(" [0-9]{1,4} ")"'))

        for constraint, field in ((dict(regex="([a-z"), "regex"), (dict(json_schema="{bad"), "json_schema"),
                                  (dict(grammar="root ::="), "grammar"), (dict(choice=pb2.Choices()), "choice")):
            req = pb2.GenerateRequest(text="x", **constraint)
            req.stop.max_tokens = 2
            with pytest.raises(grpc.RpcError) as e:
                list(stub.Generate(req, timeout=60))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in e.value.details()
        req = pb2.GenerateRequest(text="x", regex="[0-9]+")
        req.stop.max_tokens = 2
        req.stop.ignore_eos = True
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Generate(req, timeout=60))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
