"""Slow readers (issue 15, faults): a client that stops reading its stream cannot hold the daemon's memory
or engine time, nor stall other streams. Once --max-unsent-bytes of its stream wait unsent, its request is
cancelled (its KV blocks return), the stream ends with a clear error (HTTP: an SSE error event, code
stream_not_read, then [DONE]; gRPC: RESOURCE_EXHAUSTED), and pagoda_streams_ended_unread_total counts it.
Meanwhile another client's stream runs to the end."""
import json
import socket
import threading
import time

import grpc
import pytest

from conftest import start_daemon

LIMIT = 16384


@pytest.fixture(scope="module")
def daemon_small_buffers():
    # A long idle timeout: the stalled write must still be waiting when the test reads at last.
    d = start_daemon(["--max-unsent-bytes", str(LIMIT), "--http-send-buffer-bytes", "16384",
                      "--idle-timeout-s", "600"])
    yield d
    d.stop()


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ended_unread(d, api):
    return d.metric(f'pagoda_streams_ended_unread_total{{api="{api}"}}')


def idle(d):
    return (d.metric("pagoda_requests_in_flight") == 0 and d.metric("pagoda_running_sequences") == 0
            and d.metric("pagoda_kv_blocks_used") == 0)


def other_stream_finishes(d, results):
    chunks = d.openai_client().completions.create(model=d.model_id, prompt="Once upon a time", max_tokens=64,
                                                   temperature=0, stream=True)
    results.append(sum(1 for c in chunks if c.choices and c.choices[0].text is not None))


def test_an_http_client_that_does_not_read_is_ended_and_others_go_on(daemon_small_buffers):
    d = daemon_small_buffers
    before = ended_unread(d, "http")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", d.http_port))
    body = json.dumps({"model": d.model_id, "prompt": "Count: 1, 2, 3,", "max_tokens": 6000, "ignore_eos": True,
                       "stream": True, "logprobs": 5}).encode()  # logprobs: large chunks fill buffers fast
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    results = []
    other = threading.Thread(target=other_stream_finishes, args=(d, results))
    other.start()
    wait_for(lambda: ended_unread(d, "http") > before, 120, "the unread HTTP stream to be ended")
    other.join(timeout=120)
    assert results and results[0] >= 60, results  # the other stream ran to its end meanwhile
    wait_for(lambda: idle(d), 30, "the cancelled request to free its sequence and KV blocks")
    # The client reads at last: what was already in the socket's buffers, then the error and [DONE].
    s.settimeout(30)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b'"code":"stream_not_read"' in data, data[-600:]
    assert data.rstrip().endswith(b"0"), data[-100:]  # the chunked body's last chunk
    assert b"data: [DONE]" in data[-200:]
    assert "left" in d.log_tail(200) and "unread" in d.log_tail(200)
    assert d.proc.poll() is None


def test_a_grpc_client_that_does_not_read_gets_resource_exhausted(daemon_small_buffers, pb):
    pagoda_pb2, pagoda_pb2_grpc = pb
    d = daemon_small_buffers
    before = ended_unread(d, "grpc")
    # A small HTTP/2 window on the client (no BDP probing), so unread messages stay in the server's queue.
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 4096)]
    with grpc.insecure_channel(f"127.0.0.1:{d.grpc_port}", options=options) as ch:
        stub = pagoda_pb2_grpc.GenerationStub(ch)
        req = pagoda_pb2.GenerateRequest(text="Count: 1, 2, 3,")
        req.stop.max_tokens = 6000
        req.stop.ignore_eos = True
        req.sampling.logprobs = 5
        stream = stub.Generate(req, timeout=300)
        first = next(stream)  # reading starts, then stops
        assert first.token_ids and len(first.logprobs) == len(first.token_ids)
        wait_for(lambda: ended_unread(d, "grpc") > before, 180, "the unread gRPC stream to be ended")
        wait_for(lambda: idle(d), 30, "the cancelled request to free its sequence and KV blocks")
        received = 1
        with pytest.raises(grpc.RpcError) as e:
            for _ in stream:
                received += 1
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
        assert "did not read" in e.value.details()
        assert received < 6000
    assert d.proc.poll() is None
