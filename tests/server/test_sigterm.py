"""Graceful drain: SIGTERM during 8 active streams lets all of them finish, refuses new work with 503
(or connection refused once the listener is closed), and the process exits 0."""
import signal
import threading
import time

from conftest import start_daemon

N_STREAMS = 8
MAX_TOKENS = 64


def test_sigterm_drains_active_streams():
    d = start_daemon()
    try:
        first_chunk = [threading.Event() for _ in range(N_STREAMS)]
        done = [threading.Event() for _ in range(N_STREAMS)]
        results, errors = [None] * N_STREAMS, []

        def worker(i):
            try:
                client = d.openai_client()
                stream = client.completions.create(model=d.model_id, prompt=f"Drain test {i}: once upon a time",
                                                   max_tokens=MAX_TOKENS, temperature=0, stream=True,
                                                   extra_body={"ignore_eos": True})
                text, finish = "", None
                for chunk in stream:
                    first_chunk[i].set()
                    for c in chunk.choices:
                        text += c.text
                        finish = c.finish_reason or finish
                results[i] = (text, finish)
            except Exception as e:  # noqa: BLE001
                errors.append((i, repr(e)))
            finally:
                first_chunk[i].set()
                done[i].set()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_STREAMS)]
        for t in threads:
            t.start()
        for e in first_chunk:
            assert e.wait(60)
        assert not errors, errors

        d.proc.send_signal(signal.SIGTERM)
        # Wait until the daemon is draining, then a new generation request is refused.
        deadline = time.time() + 10
        refused = None
        while time.time() < deadline:
            try:
                status, _, _ = d.request("GET", "/ready", timeout=5)
                if status == 503:
                    status, _, body = d.request("POST", "/v1/completions", {"prompt": "new", "max_tokens": 2}, timeout=5)
                    refused = status
                    assert status == 503, body
                    break
            except (ConnectionRefusedError, ConnectionResetError):
                refused = "connection refused"
                break
            time.sleep(0.02)
        assert refused is not None, "no refusal observed during the drain"
        running_at_refusal = sum(not e.is_set() for e in done)

        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        for i, r in enumerate(results):
            assert r is not None and r[1] == "length", (i, r)
        assert d.proc.wait(timeout=60) == 0, d.log_tail()
        # The refusal happened while streams were still running (the test measured a real drain).
        assert refused == 503 and running_at_refusal > 0, (refused, running_at_refusal)
    finally:
        d.stop()


def test_second_sigterm_exits_at_once():
    d = start_daemon(["--grace-period-s", "600"])
    try:
        first = threading.Event()

        def worker():
            try:
                stream = d.openai_client().completions.create(model=d.model_id, prompt="A long story:",
                                                              max_tokens=4000, stream=True,
                                                              extra_body={"ignore_eos": True})
                for _ in stream:
                    first.set()
            except Exception:  # noqa: BLE001 - the stream is cut by the forced exit
                pass
            finally:
                first.set()

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        assert first.wait(60)
        d.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and d.request("GET", "/ready", timeout=5)[0] != 503:
            time.sleep(0.02)
        assert d.proc.poll() is None, "the first SIGTERM must drain, not exit, while a stream runs"
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=10) == 1, d.log_tail()  # not the 600 s grace period
        assert "second SIGTERM" in d.log_tail(20)
    finally:
        d.stop()
