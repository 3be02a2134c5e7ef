"""One engine in its own process: load a GGUF model once, then answer timing requests.

Started by compare.py as ``python bench/worker.py ENGINE MODEL_PATH N_THREADS N_CTX``. Requests
and replies are JSON lines: requests on stdin, replies on a private copy of the original stdout
(fd 1 itself is pointed at stderr, so library chatter can never corrupt the protocol).

Engines: ``wrenlm``, ``llama_cpp`` (llama-cpp-python), ``transformers`` (PyTorch CPU, float32).
All three do the same work per request: a fresh context, the prompt evaluated in one batch,
then greedy (argmax) decoding, one token at a time, timestamped as each token becomes known.

Requests:
  {"op": "gen", "ids": [...], "n": N}  -> {"t": [s after call for each new token], "tokens": [...]}
  {"op": "load"}                       -> {"load_s": ...} (model dropped, then loaded again)
  {"op": "stats"}                      -> {"peak_rss_kb": VmHWM, "rss_kb": VmRSS, "ru_maxrss_kb": ...}
  {"op": "quit"}
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback

perf = time.perf_counter


def _status_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _rss_kb() -> int:
    return _status_kb("VmRSS")


def _peak_rss_kb() -> int:
    # VmHWM: peak RSS of this process image. getrusage's ru_maxrss is NOT used for the figure:
    # Linux carries it over from the parent across fork + exec, so a worker would inherit the
    # driver's footprint as its floor. Fall back to it only where /proc is missing.
    hwm = _status_kb("VmHWM")
    return hwm if hwm >= 0 else int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --------------------------------------------------------------------------------------------
class WrenEngine:
    name = "wrenlm"

    def __init__(self, path: str, n_threads: int, n_ctx: int) -> None:
        import wrenlm

        self.wrenlm = wrenlm
        self.path, self.n_threads, self.n_ctx = path, n_threads, n_ctx
        self.m = None

    def version(self) -> dict:
        k = self.wrenlm._core.kernels
        info = {"wrenlm": self.wrenlm.__version__}
        for key, fn in (("blas_core", "blas_core"), ("active_isa", "active_isa"), ("available_isas", "available_isas")):
            try:
                info[key] = getattr(k, fn)()
            except Exception as e:  # noqa: BLE001 - a missing helper is a finding, not a crash
                info[key] = f"unavailable: {e}"
        return info

    def load(self) -> None:
        self.m = self.wrenlm.Model(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    def unload(self) -> None:
        if self.m is not None:
            self.m.close()
        self.m = None

    def gen(self, ids: list[int], n: int) -> tuple[list[float], list[int]]:
        # The public stream() drops empty pieces (held-back partial UTF-8), so it cannot time every
        # token; the Generator under it evaluates exactly one token per next() call.
        t0 = perf()
        g = self.m._generator(ids, max_tokens=n, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                              repeat_penalty=1.0, repeat_last_n=64, seed=None, stop=None, ignore_eos=True)
        times = []
        while g.next() is not None:
            times.append(perf() - t0)
        toks = list(g.tokens)
        if len(toks) != len(times):
            raise RuntimeError(f"wrenlm generator: {len(times)} next() calls for {len(toks)} tokens")
        return times, toks


class LlamaCppEngine:
    name = "llama_cpp"

    def __init__(self, path: str, n_threads: int, n_ctx: int) -> None:
        import llama_cpp
        import numpy as np

        self.lc, self.np = llama_cpp, np
        self.path, self.n_threads, self.n_ctx = path, n_threads, n_ctx
        self.m = None

    def version(self) -> dict:
        info = {"llama_cpp_python": self.lc.__version__}
        try:
            info["system_info"] = self.lc.llama_print_system_info().decode()
        except Exception:  # noqa: BLE001
            pass
        return info

    def load(self) -> None:
        self.m = self.lc.Llama(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                               n_threads_batch=self.n_threads, n_batch=512, verbose=False)
        self.n_vocab = self.m.n_vocab()

    def unload(self) -> None:
        if self.m is not None:
            self.m.close()
        self.m = None

    def _argmax_last(self) -> int:
        ptr = self.lc.llama_get_logits_ith(self.m._ctx.ctx, -1)
        return int(self.np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def gen(self, ids: list[int], n: int) -> tuple[list[float], list[int]]:
        m = self.m
        t0 = perf()
        m.reset()  # n_tokens = 0; eval() then drops every cached position
        m.eval(ids)  # batches of n_batch, logits of the last token only
        tok = self._argmax_last()
        times, toks = [perf() - t0], [tok]
        for _ in range(n - 1):
            m.eval([tok])
            tok = self._argmax_last()
            times.append(perf() - t0)
            toks.append(tok)
        return times, toks


class TransformersEngine:
    name = "transformers"

    def __init__(self, path: str, n_threads: int, n_ctx: int) -> None:
        import torch
        import transformers

        torch.set_num_threads(n_threads)
        self.torch, self.tf = torch, transformers
        self.path, self.n_threads, self.n_ctx = path, n_threads, n_ctx
        self.m = None

    def version(self) -> dict:
        t = self.torch
        return {"transformers": self.tf.__version__, "torch": t.__version__,
                "torch_threads": t.get_num_threads(),
                "torch_parallel": t.__config__.parallel_info().splitlines()[:6]}

    def load(self) -> None:
        d, f = os.path.split(os.path.abspath(self.path))
        self.m = self.tf.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=self.torch.float32)
        self.m.eval()

    def unload(self) -> None:
        self.m = None

    def gen(self, ids: list[int], n: int) -> tuple[list[float], list[int]]:
        torch = self.torch
        with torch.inference_mode():
            t0 = perf()
            x = torch.tensor([ids], dtype=torch.long)
            out = self.m(input_ids=x, use_cache=True, logits_to_keep=1)
            tok = int(out.logits[0, -1].argmax())
            times, toks = [perf() - t0], [tok]
            past = out.past_key_values
            for _ in range(n - 1):
                out = self.m(input_ids=torch.tensor([[tok]], dtype=torch.long), past_key_values=past,
                             use_cache=True, logits_to_keep=1)
                past = out.past_key_values
                tok = int(out.logits[0, -1].argmax())
                times.append(perf() - t0)
                toks.append(tok)
        return times, toks


ENGINES = {c.name: c for c in (WrenEngine, LlamaCppEngine, TransformersEngine)}


# --------------------------------------------------------------------------------------------
def main() -> int:
    engine_name, path, n_threads, n_ctx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # Private channel for replies; everything printed to fd 1 afterwards goes to stderr.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = os.fdopen(reply_fd, "w", buffering=1)

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        t = perf()
        eng = ENGINES[engine_name](path, n_threads, n_ctx)
        import_s = perf() - t
        rss_base = _rss_kb()
        t = perf()
        eng.load()
        load_s = perf() - t
        reply({"ok": True, "import_s": import_s, "load_s": load_s, "rss_base_kb": rss_base,
               "rss_loaded_kb": _rss_kb(), "pid": os.getpid(), "versions": eng.version()})
    except BaseException as e:  # noqa: BLE001
        reply({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return 1

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "quit":
                reply({"ok": True})
                return 0
            if op == "gen":
                times, toks = eng.gen(req["ids"], int(req["n"]))
                reply({"ok": True, "t": times, "tokens": toks})
            elif op == "load":
                eng.unload()
                gc.collect()
                t = perf()
                eng.load()
                load_s = perf() - t
                rep = {"ok": True, "load_s": load_s}
                if req.get("ids"):  # cold start: the first token right after loading
                    times, _ = eng.gen(req["ids"], 1)
                    rep["cold_s"] = load_s + times[0]
                reply(rep)
            elif op == "stats":
                reply({"ok": True, "peak_rss_kb": _peak_rss_kb(), "rss_kb": _rss_kb(),
                       "ru_maxrss_kb": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)})
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except BaseException as e:  # noqa: BLE001
            reply({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
