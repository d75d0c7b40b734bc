"""Faults (issue 15): a bounded run of bench/reliability.py's fault mix. Requests whose HTTP clients
disconnect (before the answer, mid-stream), whose gRPC calls are cancelled mid-stream or run past a short
deadline, mixed with whole requests that must come back correct (greedy text equal to a quiet run's).
Afterwards the daemon is alive and idle: zero KV blocks referenced, nothing running, queued or in flight
(/metrics), and it still serves the reference text. The full run (10,000 requests) is a benchmark:
`.venv/bin/python bench/reliability.py faults`."""
import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import reliability  # noqa: E402


def test_random_disconnects_cancels_and_deadlines_leak_nothing():
    args = argparse.Namespace(requests=300, concurrency=32, threads=0, seed=7)
    s = reliability.faults(args)
    assert s["daemon_alive"], s
    assert not any(s["idle_after"].values()), s["idle_after"]
    assert s["wrong_count"] == 0, s["wrong_whole_requests"]
    assert s["reference_text_after"], s
    assert s["exit_code"] == 0, s
    # Every kind of fault happened (not just drawn: a deadline met or a stream that ended first is none).
    o = s["outcomes"]
    assert o["http_disconnect_before_answer"].get("dropped", 0) > 0, o
    assert o["http_stream_disconnect"].get("dropped", 0) > 0, o
    assert o["grpc_cancel"].get("cancelled", 0) > 0, o
    assert o["grpc_deadline"].get("DEADLINE_EXCEEDED", 0) > 0, o
    assert o["http_whole"].get("200", 0) > 0 and o["grpc_whole"].get("finished", 0) > 0, o
