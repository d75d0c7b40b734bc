"""Concurrency and cancellation over HTTP: 32 simultaneous streams give their sequential greedy outputs;
a client that disconnects (streaming or not) has its request cancelled and its KV blocks freed."""
import http.client
import json
import re
import socket
import threading
import time

N_STREAMS = 32
MAX_TOKENS = 12


def prompt(i):
    return f"Here is fact number {i} about the ocean:"


def chat(i):
    return [{"role": "user", "content": f"Give me one word that rhymes with the number {i}."}]


def test_32_concurrent_streams_match_sequential(daemon):
    client = daemon.openai_client()
    expected = []
    for i in range(N_STREAMS):  # even: completions, odd: chat
        if i % 2 == 0:
            r = client.completions.create(model=daemon.model_id, prompt=prompt(i), max_tokens=MAX_TOKENS, temperature=0)
            expected.append((r.choices[0].text, r.choices[0].finish_reason))
        else:
            r = client.chat.completions.create(model=daemon.model_id, messages=chat(i), max_tokens=MAX_TOKENS,
                                               temperature=0)
            expected.append((r.choices[0].message.content, r.choices[0].finish_reason))

    results = [None] * N_STREAMS
    errors = []
    start = threading.Barrier(N_STREAMS)

    def worker(i):
        try:
            c = daemon.openai_client()
            start.wait(timeout=60)
            text, finish = "", None
            if i % 2 == 0:
                for chunk in c.completions.create(model=daemon.model_id, prompt=prompt(i), max_tokens=MAX_TOKENS,
                                                  temperature=0, stream=True):
                    for ch in chunk.choices:
                        text += ch.text
                        finish = ch.finish_reason or finish
            else:
                for chunk in c.chat.completions.create(model=daemon.model_id, messages=chat(i), max_tokens=MAX_TOKENS,
                                                       temperature=0, stream=True):
                    for ch in chunk.choices:
                        text += ch.delta.content or ""
                        finish = ch.finish_reason or finish
            results[i] = (text, finish)
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_STREAMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors
    for i in range(N_STREAMS):
        assert results[i] == expected[i], (i, results[i], expected[i])


def kv_used(daemon):
    return daemon.metric("pagoda_kv_blocks_used")


def cancelled_count(daemon):
    _, _, body = daemon.request("GET", "/metrics")
    m = re.search(r'^pagoda_requests_total\{status="cancelled"\} (\S+)$', body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def wait_kv_idle(daemon, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if kv_used(daemon) == 0:
            return True
        time.sleep(0.05)
    return False


def long_request(stream):
    return json.dumps({"prompt": f"Tell me a very long story {time.time()}", "max_tokens": 500, "temperature": 0,
                       "ignore_eos": True, "stream": stream}).encode()


def test_stream_disconnect_frees_kv(daemon):
    assert wait_kv_idle(daemon, 30)
    before = cancelled_count(daemon)
    conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=60)
    conn.request("POST", "/v1/completions", body=long_request(True), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    data_lines = 0
    while data_lines < 4:
        line = r.fp.readline()
        assert line, "the stream ended early"
        data_lines += line.startswith(b"data: ")
    assert kv_used(daemon) > 0
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    t0 = time.time()
    assert wait_kv_idle(daemon, 2.0), f"KV blocks still used {time.time() - t0:.1f} s after the disconnect"
    deadline = time.time() + 2
    while cancelled_count(daemon) <= before and time.time() < deadline:
        time.sleep(0.05)
    assert cancelled_count(daemon) == before + 1


def test_non_streaming_disconnect_frees_kv(daemon):
    assert wait_kv_idle(daemon, 30)
    before = cancelled_count(daemon)
    s = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30)
    body = long_request(False)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.time() + 10
    while kv_used(daemon) == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert kv_used(daemon) > 0
    s.close()
    assert wait_kv_idle(daemon, 2.0)
    deadline = time.time() + 2
    while cancelled_count(daemon) <= before and time.time() < deadline:
        time.sleep(0.05)
    assert cancelled_count(daemon) == before + 1
