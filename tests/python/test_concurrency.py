"""The GIL is released during compute; one model shared by threads is serialized and stays correct;
Ctrl-C stops a running generation promptly."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import wrenlm

PROMPTS = ["The capital of France is", "def add(a, b):", "Once upon a time", "My favourite colour is"]


def test_two_models_run_in_parallel(smollm2_path):
    """Two threads, each on its own model, each inside one long C++ call (logits of a long prompt).
    If the GIL were held during compute, the two calls would run one after the other: their time
    intervals could overlap only by the moment it takes to hand the GIL over. Released, both calls
    are in flight together for most of their duration. Interval overlap (unlike a CPU-time ratio)
    does not depend on how busy the machine is."""
    models = [wrenlm.Model(smollm2_path, n_ctx=512, n_threads=1) for _ in range(2)]
    ids = models[0].tokenize("The quick brown fox jumps over the lazy dog. " * 30)[:300]
    for m in models:  # warm up (page in the weights)
        m.logits(ids[:8])
    start = threading.Barrier(2)
    spans: list[tuple[float, float]] = [(0.0, 0.0), (0.0, 0.0)]

    def work(k):
        start.wait()
        t0 = time.perf_counter()
        models[k].logits(ids, exact=False)
        spans[k] = (t0, time.perf_counter())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    overlap = min(e for _, e in spans) - max(s for s, _ in spans)
    shorter = min(e - s for s, e in spans)
    print(f"calls {[round(e - s, 3) for s, e in spans]} s, overlap {overlap:.3f} s")
    # Serialized, the overlap would be ~0 (at most a GIL switch interval, 5 ms). Half the shorter call
    # leaves room for one thread starting late on a busy machine.
    assert overlap > 0.5 * shorter
    for m in models:
        m.close()


def test_one_model_many_threads_is_correct(smollm2):
    expected = {p: smollm2.generate(p, max_tokens=16) for p in PROMPTS}
    expected_logits = smollm2.logits(smollm2.tokenize(PROMPTS[0]))
    results: dict[tuple[int, str], str] = {}
    errors: list[BaseException] = []

    def work(k):
        try:
            for p in PROMPTS[k % 2::2]:
                results[(k, p)] = "".join(smollm2.stream(p, max_tokens=16))
            lg = smollm2.logits(smollm2.tokenize(PROMPTS[0]))
            assert (lg == expected_logits).all()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 8
    for (_, p), text in results.items():
        assert text == expected[p]


CHILD = r"""
import signal, sys, time, wrenlm
# Ctrl-C as a terminal delivers it, even when this test runs as a background job (which starts
# with SIGINT ignored, and Python then never raises KeyboardInterrupt).
signal.signal(signal.SIGINT, signal.default_int_handler)
m = wrenlm.Model(sys.argv[1], n_ctx=4096, n_threads=2)
mode = sys.argv[2]
n = 0
try:
    if mode == "stream":
        for piece in m.stream("Once upon a time", max_tokens=None, ignore_eos=True):
            n += 1
            if n == 3:
                print("READY", flush=True)
    else:
        print("READY", flush=True)
        m.logits(list(range(1000, 3000)))
    print("FINISHED", flush=True)
except KeyboardInterrupt:
    print(f"INTERRUPTED {n} {time.time():.6f}", flush=True)
"""


def run_and_interrupt(path, mode, delay):
    p = subprocess.Popen([sys.executable, "-c", CHILD, path, mode], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.strip() == "READY", line
        time.sleep(delay)
        sent = time.time()
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.startswith("INTERRUPTED"), out
    latency = float(out.split()[2]) - sent
    return latency


def test_ctrl_c_stops_stream_within_a_token(smollm2_path):
    latency = run_and_interrupt(smollm2_path, "stream", 0.3)
    # One decode step of this model takes ~10 ms; 0.5 s allows a slow, busy machine.
    assert latency < 0.5, latency


def test_ctrl_c_stops_long_prefill(smollm2_path):
    # A 2000-token prefill takes seconds; cancellation is checked between layers.
    latency = run_and_interrupt(smollm2_path, "prefill", 0.3)
    assert latency < 0.5, latency
