"""LoRA adapters applied at run time, against transformers + PEFT on a tiny random Llama (and Phi-3).

The adapters are made by PEFT itself (`get_peft_model`, saved with `save_pretrained`; lora_B is zero
at init, so both matrices are drawn at random here to make the update count) and, for the GGUF kind,
converted by llama.cpp's own `convert_lora_to_gguf.py`. The oracle is transformers running the base
with PEFT's adapter (unmerged: x W^T + s (x A^T) B^T), or, for several adapters, PEFT's own merge of
the first followed by the second unmerged; our side also adds s (x A^T) B^T beside the base matrix's
own product (kernels/low_rank.h), in float32.

Tolerance: as test_architectures.py, 1e-4 x max|logit| (+1e-5) with F32 weights and an F32 KV cache:
the same float32 math in another summation order (and PEFT's merge of a first adapter). The adapters
move logits by O(1) (checked: the base alone is far outside the tolerance), so a wrong scale, a
missing Q/K row permutation, a transposed update or a wrong row slice of B would fail."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import load_transformers_gguf, need, require_module
from test_architectures import tiny_llama  # noqa: F401  (a fixture: the base model)
from tiny_models import (
    assert_close,
    convert_to_gguf,
    converter_script,
    greedy_ids,
    smollm2_tokenizer,
)

PROMPT = "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2"
RTOL = 1e-4
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# -- models and adapters -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tiny_llama, smollm2_path):  # noqa: F811  (the imported fixture, by name)
    """(HF folder, llama.cpp's F32 GGUF of it, token ids of PROMPT): test_architectures' tiny Llama,
    whose 4 query heads over 2 KV heads permute attn_q and attn_k with different head counts."""
    hf, gguf = tiny_llama
    return hf, gguf, smollm2_tokenizer(smollm2_path)(PROMPT)["input_ids"]


def make_peft_adapter(hf: Path, out: Path, seed: int, std: float = 0.15, **config) -> Path:
    """A PEFT LoRA adapter for the model in hf, with A and B drawn from N(0, std^2), saved as safetensors."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    peft = require_module("peft")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(lora_dropout=0.0, **config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.normal_(0.0, std)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    """Every linear layer of both blocks, r 4, alpha 8 (scale 2)."""
    return make_peft_adapter(base[0], tmp_path_factory.mktemp("lora_a") / "peft", seed=1, r=4, lora_alpha=8,
                             target_modules=ALL_LINEAR)


@pytest.fixture(scope="module")
def adapter2(base, tmp_path_factory):
    """A second adapter: rank-stabilized (scale alpha / sqrt(r)), on q_proj and the output head."""
    return make_peft_adapter(base[0], tmp_path_factory.mktemp("lora_b") / "peft", seed=2, r=2, lora_alpha=3,
                             use_rslora=True, target_modules=["q_proj", "lm_head"])


def lora_converter() -> Path:
    """llama.cpp's convert_lora_to_gguf.py, beside convert_hf_to_gguf.py (.ci/run extracts both)."""
    script = converter_script().parent / "convert_lora_to_gguf.py"
    if not script.is_file():
        need("llama.cpp convert_lora_to_gguf.py", f"not beside $WRENLM_LLAMA_CPP_CONVERT ({script}); .ci/run "
             "extracts it from the sdist")
    return script


def convert_adapter(adapter_dir: Path, base_hf: Path, out: Path, outtype: str = "f32") -> Path:
    proc = subprocess.run([sys.executable, str(lora_converter()), str(adapter_dir), "--base", str(base_hf),
                           "--outtype", outtype, "--outfile", str(out)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_lora_to_gguf.py failed:\n{proc.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def gguf_adapter(base, adapter, tmp_path_factory):
    return convert_adapter(adapter, base[0], tmp_path_factory.mktemp("lora_gguf") / "adapter-f32.gguf")


# -- the oracle ----------------------------------------------------------------------------------------

def with_adapter(model, adapter_dir: Path, scale: float):
    """model under PEFT's adapter, its scale multiplied by `scale` (PEFT's set_scale)."""
    peft = require_module("peft")
    from peft.tuners.lora import LoraLayer

    m = peft.PeftModel.from_pretrained(model, adapter_dir).eval()
    if scale != 1.0:
        for module in m.modules():
            if isinstance(module, LoraLayer):
                module.set_scale("default", scale)
    return m


def peft_model(hf_or_model, adapters: list[tuple[Path, float]]):
    """transformers + PEFT: all adapters but the last merged by PEFT (merge_and_unload), the last unmerged."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    torch.set_num_threads(2)
    model = hf_or_model
    if isinstance(model, Path):
        model = transformers.AutoModelForCausalLM.from_pretrained(model, torch_dtype=torch.float32).eval()
    for k, (path, scale) in enumerate(adapters):
        model = with_adapter(model, path, scale)
        if k + 1 < len(adapters):
            model = model.merge_and_unload()
    return model


def logits_of(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def ours(path: Path, lora, ids: list[int]) -> np.ndarray:
    return wrenlm.Model(path, kv_cache="f32", n_threads=2, lora=lora).logits(ids)


# -- parity --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("kind", ["gguf", "hf"])
def test_peft_adapter_matches_peft(base, adapter, kind, scale):
    """PEFT adapter over llama.cpp's GGUF (Q/K rows permuted: B's rows are permuted to match) and
    over the HF folder itself (transformers' row order: none)."""
    hf, gguf, ids = base
    ref = logits_of(peft_model(hf, [(adapter, scale)]), ids)
    assert_close(ours(gguf if kind == "gguf" else hf, [(adapter, scale)], ids), ref, RTOL)


@pytest.mark.parametrize("kind", ["gguf", "hf"])
def test_adapter_on_fused_phi3_matrices(tmp_path_factory, smollm2_path, kind):
    """Phi-3's fused attn_qkv and gate/up ffn_up are bound as row parts (Q, K, V; gate, up): each part
    applies its own rows of the adapter's B. Against PEFT on the same fused Linear layers."""
    from test_architectures import make_tiny

    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.Phi3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                  original_max_position_embeddings=512, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, tie_word_embeddings=False)
    hf, gguf = make_tiny(tmp_path_factory, "lora_phi3", cfg, transformers.Phi3ForCausalLM, tok,
                         tokenizer_class="GPT2Tokenizer")
    adapter = make_peft_adapter(hf, tmp_path_factory.mktemp("lora_phi3_a") / "peft", seed=3, r=4, lora_alpha=8,
                                target_modules=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
    ids = tok(PROMPT)["input_ids"]
    ref = logits_of(peft_model(hf, [(adapter, 1.0)]), ids)
    assert_close(ours(gguf if kind == "gguf" else hf, adapter, ids), ref, RTOL)


def test_adapter_changes_the_logits(base, adapter):
    """The test adapters are not negligible: the base alone is far outside the tolerance."""
    hf, gguf, ids = base
    ref = logits_of(peft_model(hf, [(adapter, 1.0)]), ids)
    plain = wrenlm.Model(gguf, kv_cache="f32", n_threads=2).logits(ids)
    assert np.abs(plain - ref).max() > 100 * RTOL * np.abs(ref).max()


@pytest.mark.parametrize("kind", ["gguf", "hf"])
def test_gguf_adapter_matches_peft(base, adapter, gguf_adapter, kind):
    """The same adapter converted by llama.cpp (alpha / rank scale, Q/K lora_b permuted by the
    converter): over the GGUF base as written, over the HF folder with B's rows put back."""
    hf, gguf, ids = base
    ref = logits_of(peft_model(hf, [(adapter, 0.5)]), ids)
    assert_close(ours(gguf if kind == "gguf" else hf, [(gguf_adapter, 0.5)], ids), ref, RTOL)


def test_adapters_add_up(base, adapter, adapter2):
    """Two adapters (one rank-stabilized, one on the output head) with their own scales: PEFT merges
    the first, then runs the second."""
    hf, gguf, ids = base
    ref = logits_of(peft_model(hf, [(adapter, 1.0), (adapter2, 0.5)]), ids)
    assert_close(ours(gguf, [adapter, (adapter2, 0.5)], ids), ref, RTOL)


def test_greedy_generation_with_adapter(base, adapter):
    """Prefill + KV-cache decode with the adapter (one token at a time: its terms split across the
    product's threads) against PEFT's greedy tokens by full recomputation."""
    hf, gguf, ids = base
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2, lora=adapter)
    assert model.generate_ids(ids, max_tokens=12, ignore_eos=True) == greedy_ids(peft_model(hf, [(adapter, 1.0)]),
                                                                                 ids, 12)


def test_adapter_on_quantized_base(base, adapter, tmp_path):
    """A Q8_0 base, exact path (float activations on the dequantized blocks, terms added in float32).
    Oracle: transformers' own dequantization of the same Q8_0 file (gguf-py) with PEFT's adapter on top."""
    hf, _, ids = base
    q8 = convert_to_gguf(hf, tmp_path / "model-q8_0.gguf", outtype="q8_0")
    ref = logits_of(peft_model(load_transformers_gguf(str(q8)), [(adapter, 1.0)]), ids)
    assert_close(ours(q8, adapter, ids), ref, RTOL)


def test_adapter_on_quantized_base_generation_path(base, adapter, tmp_path):
    """The generation path on a Q8_0 base: 8-bit activations on the packed blocks, the adapter's terms
    in float32 inside the same jobs (a 16-token prompt, then one token at a time). The 8-bit
    activations alone move logits by a few % of their scale (test_architectures.py), so against
    transformers + PEFT on the same Q8_0 file (dequantized): prompt logits with top-1 equal at >= 85%
    of positions and within a quarter of the adapter's own effect (a lost or misplaced update leaves
    the fast path about as far from the adapted reference as the base is); each greedy token the
    reference's top-1, or within 10% of the adapter's effect of it (a near tie), teacher-forced."""
    hf, _, ids = base
    torch = require_module("torch")
    q8 = convert_to_gguf(hf, tmp_path / "model-q8_0.gguf", outtype="q8_0")
    ids = ids[:16]
    ref_model = peft_model(load_transformers_gguf(str(q8)), [(adapter, 1.0)])
    ref = logits_of(ref_model, ids)
    with torch.no_grad():
        effect = np.abs(ref - logits_of(load_transformers_gguf(str(q8)), ids)).max()
    model = wrenlm.Model(q8, n_threads=2, lora=adapter)
    fast = model.logits(ids, exact=False)
    agree = float((fast.argmax(-1) == ref.argmax(-1)).mean())
    err = np.abs(fast - ref).max()
    print(f"prompt: top-1 agreement {agree:.3f}, max |diff| {err:.3g}, adapter effect {effect:.3g}")
    assert agree >= 0.85 and err < 0.25 * effect
    gen = model.generate_ids(ids, max_tokens=12, ignore_eos=True)
    ref_gen = logits_of(ref_model, ids + gen)[len(ids) - 1:-1]  # the reference's view before each token
    behind = [float(row.max() - row[t]) for row, t in zip(ref_gen, gen)]
    print(f"greedy: reference top-1 at {sum(b == 0 for b in behind)}/12, largest shortfall {max(behind):.3g}")
    assert max(behind) <= 0.1 * effect


def test_info_lists_adapters(base, adapter, gguf_adapter):
    hf, gguf, _ = base
    model = wrenlm.Model(gguf, n_threads=2, lora=[adapter, (str(gguf_adapter), 0.25)])
    a, g = model.info["lora"]
    assert (a["path"], a["format"], a["scale"], a["alpha"], a["rank"]) == (str(adapter), "peft", 1.0, 8.0, 4)
    assert (g["format"], g["scale"], g["alpha"], g["rank"]) == ("gguf", 0.25, 8.0, 4)
    names = {f"blk.{i}.{n}.weight" for i in range(2)
             for n in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]}
    assert set(a["targets"]) == names == set(g["targets"])
    # A (r x cols) and B (rows x r) of each target, float32, for both rank-4 adapters: per block
    # 64x64 q/o, 32x64 k/v, 3 x 160x64 MLP (not the matrices themselves: nothing is merged).
    per_block = 4 * (2 * (64 + 64) + 2 * (32 + 64) + 3 * (160 + 64))
    assert model.info["lora_bytes"] == 2 * 2 * 4 * per_block
    assert wrenlm.Model(gguf, n_threads=2).info["lora"] == []


# -- arguments and bad adapters ------------------------------------------------------------------------

@pytest.mark.parametrize("lora, match", [
    (3, "lora must be"),
    ([("x", "1.0")], r"lora\[0\]"),
    ([("x", float("nan"))], "finite"),
    (("x", math.inf), "finite"),
    ([b"x"], r"lora\[0\]"),
])
def test_bad_lora_arguments(base, lora, match):
    with pytest.raises(ValueError, match=match):
        wrenlm.Model(base[1], n_threads=2, lora=lora)


def copy_peft(src: Path, dst: Path, config: dict | None = None, tensors=None) -> Path:
    """A copy of a PEFT folder with config keys replaced and tensors(dict of numpy arrays) -> new dict."""
    st = require_module("safetensors.numpy")
    shutil.copytree(src, dst)
    if config is not None:
        c = json.loads((dst / "adapter_config.json").read_text())
        c.update(config)
        (dst / "adapter_config.json").write_text(json.dumps(c))
    if tensors is not None:
        st.save_file(tensors(st.load_file(str(src / "adapter_model.safetensors"))),
                     str(dst / "adapter_model.safetensors"))
    return dst


def renamed(old: str, new: str):
    return lambda t: {k.replace(old, new): v for k, v in t.items()}


def poisoned(key_part: str, value: float):
    def f(t):
        t = dict(t)
        k = next(k for k in t if key_part in k)
        t[k] = t[k].copy()
        t[k].flat[3] = value
        return t
    return f


@pytest.mark.parametrize("case, exc, match", [
    (dict(tensors=renamed("q_proj", "qq_proj")), wrenlm.FormatError,
     r"safetensors: tensor '.*layers\.\d\.self_attn\.qq_proj\.lora_A\.weight'.*not a weight of a 'llama'"),
    (dict(tensors=renamed("layers.1.", "layers.7.")), wrenlm.FormatError,
     r"safetensors: tensor '.*layers\.7\.[^']*': updates 'blk\.7\.[^']*', which the base model .* does not"),
    (dict(tensors=lambda t: {k: (v[:, :32] if "q_proj.lora_A" in k else v) for k, v in t.items()}),
     wrenlm.FormatError, r"q_proj\.lora_A\.weight': expected a \(64 x 64\) update .* found \(64 x 32\)"),
    (dict(tensors=lambda t: {k: v for k, v in t.items() if "layers.0.mlp.up_proj.lora_B" not in k}),
     wrenlm.FormatError, r"layers\.0\.mlp\.up_proj\.lora_B\.weight': missing"),
    (dict(tensors=poisoned("v_proj.lora_B", float("nan"))), wrenlm.FormatError,
     r"v_proj\.lora_A\.weight': B holds a non-finite value \(nan\)"),
    (dict(tensors=lambda t: {k: v[:0] if "lora_A" in k else v[:, :0] for k, v in t.items()},
          config={"r": 0}), wrenlm.FormatError, r"adapter_config\.json: \$\.r: expected a rank > 0"),
    (dict(config={"r": 8}), wrenlm.FormatError, r"has rank 4 but adapter_config\.json says r = 8"),
    (dict(config={"use_dora": True}), wrenlm.UnsupportedError, "use_dora: DoRA"),
    (dict(config={"peft_type": "IA3"}), wrenlm.UnsupportedError, "only LORA"),
    (dict(config={"alpha_pattern": {"q_proj": 16}}), wrenlm.UnsupportedError, "alpha_pattern"),
    (dict(tensors=lambda t: {**t, "base_model.model.lm_head.weight": np.zeros((4, 4), np.float32)}),
     wrenlm.UnsupportedError, r"lm_head\.weight': is not a LoRA matrix"),
])
def test_bad_peft_adapters(base, adapter, tmp_path, case, exc, match):
    bad = copy_peft(adapter, tmp_path / "bad", **case)
    with pytest.raises(exc, match=match):
        wrenlm.Model(base[1], n_threads=2, lora=bad)


def test_peft_folder_without_files(base, adapter, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(wrenlm.FormatError, match="adapter_config.json: missing"):
        wrenlm.Model(base[1], n_threads=2, lora=tmp_path / "empty")
    pickled = copy_peft(adapter, tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    with pytest.raises(wrenlm.FormatError, match="adapter_model.bin: PyTorch pickle"):
        wrenlm.Model(base[1], n_threads=2, lora=pickled)
    with pytest.raises(wrenlm.FormatError, match="no such LoRA adapter"):
        wrenlm.Model(base[1], n_threads=2, lora=tmp_path / "nowhere")


def write_gguf_adapter(path: Path, arch: str, tensors: dict, alpha: float = 8.0, general_type: str = "adapter"):
    """A GGUF adapter written by gguf-py: numpy (rank, cols) arrays are ggml [cols, rank]."""
    gguf = require_module("gguf")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type(general_type)
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", alpha)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gguf_adapter_tensors(path: Path) -> dict:
    gguf = require_module("gguf")
    r = gguf.GGUFReader(str(path))
    return {t.name: np.array(t.data) for t in r.tensors}


@pytest.mark.parametrize("arch, edit, exc, match", [
    ("qwen2", None, wrenlm.FormatError, r"general\.architecture: the adapter is for 'qwen2' models but the base"),
    ("llama", lambda t: {k.replace("blk.1.", "blk.5."): v for k, v in t.items()}, wrenlm.FormatError,
     r"blk\.5\.\w+\.weight\.lora_b': updates 'blk\.5\.\w+\.weight', which the base model"),
    ("llama", lambda t: {k: v for k, v in t.items() if k != "blk.0.attn_v.weight.lora_a"}, wrenlm.FormatError,
     r"blk\.0\.attn_v\.weight\.lora_a': missing"),
    ("llama", lambda t: {k: (v[:, :16] if k == "blk.0.ffn_up.weight.lora_a" else v) for k, v in t.items()},
     wrenlm.FormatError, r"blk\.0\.ffn_up\.weight\.lora_b': expected a \(160 x 64\) update .* found \(160 x 16\)"),
    ("llama", lambda t: {**t, "blk.0.attn_norm.weight": np.ones(64, np.float32)}, wrenlm.UnsupportedError,
     "norm weights"),
    ("llama", lambda t: {**t, "blk.0.attn_q.weight": np.ones((64, 64), np.float32)}, wrenlm.FormatError,
     r"blk\.0\.attn_q\.weight': expected a name ending in \.lora_a or \.lora_b"),
    ("llama", lambda t: {k: (np.full_like(v, np.inf) if k == "blk.1.attn_k.weight.lora_a" else v)
                         for k, v in t.items()}, wrenlm.FormatError, r"A holds a non-finite value \(inf\)"),
])
def test_bad_gguf_adapters(base, gguf_adapter, tmp_path, arch, edit, exc, match):
    tensors = gguf_adapter_tensors(gguf_adapter)
    bad = write_gguf_adapter(tmp_path / "bad.gguf", arch, edit(tensors) if edit else tensors)
    with pytest.raises(exc, match=match):
        wrenlm.Model(base[1], n_threads=2, lora=bad)


def test_model_file_is_not_an_adapter(base):
    with pytest.raises(wrenlm.FormatError, match=r"general\.type: expected 'adapter'.*this is a model file"):
        wrenlm.Model(base[1], n_threads=2, lora=base[1])


# -- command line --------------------------------------------------------------------------------------

def test_cli_lora_flag_parses_path_and_scale():
    from wrenlm import cli

    args = cli.build_parser().parse_args(["generate", "--lora", "a.gguf:0.5", "--lora", "dir/peft",
                                          "--lora", "odd:name", "--lora", "x:-1e-1", "hi"])
    assert args.lora == [("a.gguf", 0.5), ("dir/peft", 1.0), ("odd:name", 1.0), ("x", -0.1)]
    assert cli.build_parser().parse_args(["info"]).lora is None


def test_cli_generate_with_lora_matches_library(base, adapter, gguf_adapter):
    """`wrenlm generate --lora` prints what Model(..., lora=...) generates (greedy), in a subprocess."""
    from test_cli import wrenlm_cmd

    _, gguf, _ = base
    model = wrenlm.Model(gguf, n_threads=2, lora=[(adapter, 1.0), (gguf_adapter, 0.5)])
    expected = model.generate(PROMPT, max_tokens=8)
    ids = model.tokenize(PROMPT)
    assert model.generate_ids(ids, max_tokens=8, ignore_eos=True) != wrenlm.Model(gguf, n_threads=2).generate_ids(
        ids, max_tokens=8, ignore_eos=True)
    r = wrenlm_cmd("generate", "--greedy", "-n", "8", "--threads", "2", "--model", str(gguf), "--lora", str(adapter),
                   "--lora", f"{gguf_adapter}:0.5", PROMPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"
    r = wrenlm_cmd("info", "--model", str(gguf), "--lora", f"{adapter}:2")
    assert r.returncode == 0, r.stderr
    assert "'format': 'peft'" in r.stdout and "'scale': 2.0" in r.stdout
    r = wrenlm_cmd("generate", "--model", str(gguf), "--lora", str(gguf), PROMPT)
    assert r.returncode == 2 and "general.type: expected 'adapter'" in r.stderr and "Traceback" not in r.stderr


# -- merged into a file by wrenlm quantize ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gguf", "hf"])
def test_quantize_merges_adapters_like_peft(base, adapter, adapter2, kind, tmp_path):
    """`quantize(..., type="F32", lora=...)` writes W + the updates: the merged file, with no adapter
    at run time, gives PEFT's logits within the run-time parity's tolerance. From the HF folder the
    merge happens in transformers' row order and the Q/K rows are permuted afterwards for the GGUF."""
    hf, gguf, ids = base
    out = tmp_path / "merged.gguf"
    wrenlm.quantize(gguf if kind == "gguf" else hf, out, type="F32", lora=[adapter, (adapter2, 0.5)], progress=False)
    ref = logits_of(peft_model(hf, [(adapter, 1.0), (adapter2, 0.5)]), ids)
    assert_close(ours(out, None, ids), ref, RTOL)


def test_quantize_cli_merges_a_gguf_adapter_before_quantizing(base, adapter, gguf_adapter, tmp_path):
    """`wrenlm quantize --type Q8_0 --lora ADAPTER.gguf:0.5`: llama.cpp's adapter merged, then Q8_0.
    Oracle: PEFT's logits on float weights. Q8_0 rounding (1/254 of each block's largest weight) moves
    the logits a little: the merged file must sit within twice what the same rounding costs the base
    alone (its Q8_0 file against its F32 file), and far closer to PEFT than the unadapted base is."""
    from wrenlm.cli import main

    hf, gguf, ids = base
    out, base_q8 = tmp_path / "merged-q8_0.gguf", tmp_path / "base-q8_0.gguf"
    assert main(["quantize", str(gguf), str(out), "--type", "Q8_0", "--quiet", "--lora", f"{gguf_adapter}:0.5"]) == 0
    wrenlm.quantize(gguf, base_q8, type="Q8_0", progress=False)
    ref = logits_of(peft_model(hf, [(adapter, 0.5)]), ids)
    plain = ours(gguf, None, ids)
    err = np.abs(ours(out, None, ids) - ref).max()
    rounding = np.abs(ours(base_q8, None, ids) - plain).max()
    effect = np.abs(plain - ref).max()
    print(f"Q8_0 merged vs PEFT: max |diff| {err:.4f}; Q8_0 rounding of the base {rounding:.4f}; "
          f"the adapter's effect {effect:.4f}")
    assert err < 2 * rounding
    assert err < 0.1 * effect
