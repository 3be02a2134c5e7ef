"""atheris target: the arguments of wrenlm's Python surface.

A tiny random Llama (gguf-py writes it once, at start) is loaded, and every input drives one call --
Model(...), tokenize, detokenize, is_eog, logits, hidden_states, generate / stream / generate_ids,
chat, apply_chat_template, perplexity, or the Tokenizer class -- with arguments the fuzzer picks:
integers across and beyond the native ranges (int32, int64, uint64), floats including NaN, +-inf,
-0.0 and subnormals, strings with lone surrogates, wrong types (bool, None, bytes, float for int).

Expected outcomes: a result, or ValueError / TypeError / wrenlm.WrenError (FormatError,
ContextOverflowError, ChatTemplateError, ...). Anything else (another exception, a crash of the
process, a hang past -timeout, memory past -rss_limit_mb) is a finding.

Coverage: atheris instruments this script and the wrenlm Python package; the native extension is not
instrumented (it is built without -fsanitize=fuzzer), so feedback comes from the Python branches only.
The C++ behind these calls is fuzzed with coverage by the libFuzzer targets in fuzz/targets/.

Run through tools/fuzz.sh (smoke / run / repro), or directly: python fuzz/python/fuzz_model_args.py CORPUS_DIR
"""

from __future__ import annotations

import os
import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    import wrenlm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import scratch_dir  # noqa: E402
from tiny_gguf import write_tiny_llama  # noqa: E402

# FileNotFoundError: a model path that does not exist (the documented error of Model and Tokenizer).
EXPECTED = (ValueError, TypeError, FileNotFoundError, wrenlm.WrenError)

# Integers at the edges of every native type a parameter can be converted to.
EDGE_INTS = [0, 1, -1, 2, 63, 64, 65, 255, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32, 2**63 - 1, 2**63,
             -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]
EDGE_FLOATS = [0.0, -0.0, 1.0, 0.5, 1e-45, 1e-38, 5e-324, 2.2250738585072014e-308, 3.4028235e38, 3.5e38, 1e308,
               float("inf"), float("-inf"), float("nan"), -1.0, 1.0000001, 0.9999999]
ODD_VALUES = [None, True, False, "7", b"7", 3.0, [1], {}, np.int64(3), np.uint64(2**64 - 1), np.float32("nan"),
              np.float64(1e300)]


TMP = scratch_dir("wrenlm-fuzz-args-")
MODEL_PATH = os.path.join(TMP, "tiny-llama.gguf")
write_tiny_llama(MODEL_PATH, dim=64, ffn=128)
MODEL = wrenlm.Model(MODEL_PATH, n_ctx=64, n_threads=1)
TOKENIZER = wrenlm.Tokenizer(MODEL_PATH)


def an_int(fdp: atheris.FuzzedDataProvider) -> object:
    k = fdp.ConsumeIntInRange(0, 5)
    if k == 0:
        return fdp.PickValueInList(EDGE_INTS)
    if k == 1:
        return fdp.ConsumeIntInRange(-2, 70)
    if k == 2:
        return fdp.ConsumeInt(9)  # up to 72 bits, signed
    if k == 3:
        return fdp.PickValueInList(ODD_VALUES)
    return fdp.ConsumeIntInRange(0, 320)


def a_float(fdp: atheris.FuzzedDataProvider) -> object:
    k = fdp.ConsumeIntInRange(0, 4)
    if k == 0:
        return fdp.PickValueInList(EDGE_FLOATS)
    if k == 1:
        return fdp.ConsumeFloat()
    if k == 2:
        return fdp.ConsumeFloatInRange(0.0, 2.0)
    if k == 3:
        return fdp.PickValueInList(ODD_VALUES)
    return fdp.ConsumeProbability()


def a_text(fdp: atheris.FuzzedDataProvider) -> object:
    k = fdp.ConsumeIntInRange(0, 4)
    n = fdp.ConsumeIntInRange(0, 48)
    if k == 0:
        return fdp.ConsumeUnicode(n)  # may hold lone surrogates
    if k == 1:
        return fdp.ConsumeUnicodeNoSurrogates(n)
    if k == 2:
        return "<|im_start|>" + fdp.ConsumeUnicodeNoSurrogates(n) + "<|im_end|>"
    if k == 3:
        return fdp.PickValueInList(ODD_VALUES)
    return "the " * fdp.ConsumeIntInRange(0, 20)


def some_ids(fdp: atheris.FuzzedDataProvider) -> object:
    if fdp.ConsumeIntInRange(0, 9) == 0:
        return fdp.PickValueInList(ODD_VALUES + ["abc", b"abc", np.arange(3), np.array([1.5])])
    return [an_int(fdp) if fdp.ConsumeIntInRange(0, 3) == 0 else fdp.ConsumeIntInRange(0, 299)
            for _ in range(fdp.ConsumeIntInRange(0, 12))]


def sampling_kwargs(fdp: atheris.FuzzedDataProvider) -> dict:
    kw: dict = {}
    for name, kind in (("max_tokens", "int"), ("temperature", "float"), ("top_k", "int"), ("top_p", "float"),
                       ("min_p", "float"), ("repeat_penalty", "float"), ("repeat_last_n", "int"), ("seed", "int"),
                       ("stop", "stop"), ("ignore_eos", "bool")):
        if not fdp.ConsumeBool():
            continue
        if kind == "int":
            kw[name] = an_int(fdp)
        elif kind == "float":
            kw[name] = a_float(fdp)
        elif kind == "bool":
            kw[name] = fdp.PickValueInList([True, False, 0, 1, None, "yes"])
        else:
            kw[name] = a_text(fdp) if fdp.ConsumeBool() else [a_text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if fdp.ConsumeIntInRange(0, 15) == 0:
        kw["no_such_option"] = 1
    # Generation length is bounded by the context (64); keep the usual case short.
    if "max_tokens" not in kw:
        kw["max_tokens"] = fdp.ConsumeIntInRange(1, 8)
    return kw


def messages(fdp: atheris.FuzzedDataProvider) -> object:
    if fdp.ConsumeIntInRange(0, 9) == 0:
        return fdp.PickValueInList(ODD_VALUES + [[], [{}], [{"role": "user"}], "hi", [{"role": 1, "content": "x"}]])
    return [{"role": fdp.PickValueInList(["system", "user", "assistant", "", "tool"]) if fdp.ConsumeBool()
             else a_text(fdp), "content": a_text(fdp)} for _ in range(fdp.ConsumeIntInRange(1, 3))]


def one_call(fdp: atheris.FuzzedDataProvider) -> None:
    op = fdp.ConsumeIntInRange(0, 13)
    m = MODEL
    if op == 0:
        kw = {}
        for name, gen in (("n_ctx", an_int), ("n_threads", an_int), ("kv_cache", a_text), ("lora", a_text)):
            if fdp.ConsumeBool():
                kw[name] = gen(fdp)
        if isinstance(kw.get("n_ctx"), int) and not isinstance(kw.get("n_ctx"), bool) and kw["n_ctx"] > 4096:
            kw["n_ctx"] = kw["n_ctx"] % 4096 if fdp.ConsumeBool() else kw["n_ctx"]
        if isinstance(kw.get("n_threads"), int) and not isinstance(kw.get("n_threads"), bool) and kw["n_threads"] > 4:
            kw["n_threads"] = 1 + kw["n_threads"] % 4  # each thread is a real OS thread
        path = fdp.PickValueInList([MODEL_PATH, MODEL_PATH, TMP, os.path.join(TMP, "missing.gguf"), "", None, 3,
                                    MODEL_PATH + "\udcff", MODEL_PATH.encode()])
        with wrenlm.Model(path, **kw) as other:
            other.tokenize("hi")
    elif op == 1:
        m.tokenize(a_text(fdp), add_bos=fdp.ConsumeBool(), special=fdp.ConsumeBool())
    elif op == 2:
        m.detokenize(some_ids(fdp), skip_special=fdp.ConsumeBool())
    elif op == 3:
        m.is_eog(an_int(fdp))
    elif op == 4:
        out = m.logits(some_ids(fdp), exact=fdp.ConsumeBool())
        assert out.shape[1] == m.n_vocab
    elif op == 5:
        m.hidden_states(some_ids(fdp), exact=fdp.ConsumeBool())
    elif op == 6:
        prompt = a_text(fdp) if fdp.ConsumeBool() else some_ids(fdp)
        m.generate(prompt, **sampling_kwargs(fdp))
    elif op == 7:
        prompt = a_text(fdp) if fdp.ConsumeBool() else some_ids(fdp)
        for piece in m.stream(prompt, **sampling_kwargs(fdp)):
            piece.encode("utf-8")  # a piece is always whole characters
    elif op == 8:
        ids = m.generate_ids(some_ids(fdp), **sampling_kwargs(fdp))
        assert all(0 <= t < m.n_vocab for t in ids)
    elif op == 9:
        m.chat(messages(fdp), stream=fdp.ConsumeBool(), **sampling_kwargs(fdp))
    elif op == 10:
        m.apply_chat_template(messages(fdp), add_generation_prompt=fdp.ConsumeBool())
    elif op == 11:
        text = a_text(fdp) if fdp.ConsumeBool() else some_ids(fdp)
        m.perplexity(text, n_ctx=an_int(fdp), exact=fdp.ConsumeBool())
    elif op == 12:
        t = TOKENIZER
        which = fdp.ConsumeIntInRange(0, 5)
        if which == 0:
            t.encode(a_text(fdp), add_bos=fdp.ConsumeBool(), parse_special=fdp.ConsumeBool())
        elif which == 1:
            t.decode(some_ids(fdp), skip_special=fdp.ConsumeBool())
        elif which == 2:
            "".join(t.stream(some_ids(fdp), skip_special=fdp.ConsumeBool())).encode("utf-8")
        elif which == 3:
            t.token_bytes(an_int(fdp))
        elif which == 4:
            t.token_id(a_text(fdp))
        else:
            t.is_eog(an_int(fdp))
            t.is_control(an_int(fdp))
    else:
        wrenlm.Tokenizer(fdp.PickValueInList([MODEL_PATH, TMP, "", None, 1.5, MODEL_PATH + "\ud800"]))


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    try:
        one_call(fdp)
    except EXPECTED:
        pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
