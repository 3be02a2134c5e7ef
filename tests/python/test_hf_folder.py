"""Hugging Face model folders read directly (config.json + safetensors + tokenizer.json).

The oracle for the translation is llama.cpp's own converter: for a tiny random model of each family
written by transformers, our view of the folder must hold what `convert_hf_to_gguf.py` writes to GGUF
for it: the same architecture and model keys, the same tensor names and shapes (ggml order), and for
F32 weights the same values (bit-exact: renames are zero-copy, and the converter's value changes,
Gemma's +1 norms, GPT-2's transposes, BLOOM's Q/K/V reordering, are exact in float32). Where we differ
on purpose it is stated: Llama Q/K keep transformers' row order (wrenlm.rope.neox instead of the
converter's permutation), Mixtral experts are per-expert tensors instead of stacked ones.

End to end, transformers on the same folder is the oracle for logits (tolerance as in
test_architectures.py) and HF `tokenizers` for token ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import require_module
from hf_pre_tokenizers import GPT2_RE, PRE_TOKENIZERS, byte_level, seq, split
from test_tokenizer import CORPUS as HOSTILE_CORPUS
from tiny_models import assert_close, converter_script, save_hf_model, smollm2_tokenizer, transformers_logits
from wrenlm import _core

RTOL = 1e-4  # see test_architectures.py: F32 weights, F32 KV cache, 2-layer models
PROMPT = "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2"
CORPUS = [PROMPT, "Hello world!", "  leading spaces\tand\ttabs\n\nnew lines  ", "Ünïcödé façade naïve café",
          "日本語のテキスト 😀 emoji 🦙🦙", "I've been 'told' he's there, 'RE you sure?", "3.14159 1,000,000 0x1F",
          "<|im_start|>user\nhi<|im_end|>", "", " ", "a" * 300]


def assert_folder_logits(hf: Path, argmax: bool) -> None:
    """The folder's logits on PROMPT within RTOL x max|logit| of transformers' (F32 KV cache)."""
    model = wrenlm.Model(hf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert_close(model.logits(ids), transformers_logits(hf, ids), RTOL, argmax=argmax)


def convert(hf_dir: Path, out: Path, pre: str | None = None) -> Path:
    """llama.cpp's converter on a folder. pre pins its pre-tokenizer detection (it recognises only
    known vocabularies by hashing their output; our tiny models reuse SmolLM2's vocabulary), leaving
    everything else to the converter."""
    script = converter_script()
    code = ("import sys, runpy\n"
            f"sys.path.insert(0, {str(script.parent)!r})\n"
            f"sys.argv = [{str(script)!r}, {str(hf_dir)!r}, '--outtype', 'f32', '--outfile', {str(out)!r}]\n")
    if pre is not None:
        code += f"import conversion.base as b\nb.TextModel.get_vocab_base_pre = lambda self, tok: {pre!r}\n"
    code += f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed for {hf_dir}:\n{proc.stderr[-4000:]}")
    return out


def gguf_view(path: Path, skip: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(metadata, {name: (shape, float32 array or None)}) of the converter's GGUF file. Read with our
    GGUF reader (tested against gguf-py in test_gguf_reader.py; gguf-py itself decodes the 49k-token
    arrays too slowly to run once per family). Keys starting with a prefix in skip are left out."""
    f = _core.GgufFile(str(path))
    meta = {k: v for k, v in f.metadata.items() if not k.startswith(skip)}
    tensors = {}
    for name, dtype, shape, _, _ in f.tensors:
        data = np.frombuffer(f.tensor_bytes(name), np.float32) if dtype == "F32" else None
        tensors[name] = (list(shape), data)
    return meta, tensors


def ours_f32(src, name: str) -> np.ndarray:
    (dtype,) = [d for n, d, _ in src.tensors if n == name]
    raw = src.tensor_bytes(name)
    if dtype == "F32":
        return np.frombuffer(raw, np.float32)
    if dtype == "F16":
        return np.frombuffer(raw, np.float16).astype(np.float32)
    assert dtype == "BF16"
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undoes the converter's Llama Q/K row permutation (interleaved pairs -> transformers' halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# Keys that describe the file, not the model, and the pre-tokenizer name (the converter's is found by
# hashing; ours from the tokenizer.json regexes; both must tokenize identically, which is tested).
IGNORED = ("general.", "tokenizer.ggml.pre")


def assert_same_as_converter(src, gguf_path: Path, *, extra: set[str] = frozenset(), skip: tuple[str, ...] = (),
                             permuted: dict[str, int] | None = None, stacked_experts: bool = False,
                             computed: frozenset[str] = frozenset()) -> None:
    """computed: tensors the converter computes from config.json in float32 (rope_freqs); pow() may
    round differently in the last bit, so these compare to 1e-6 relative."""
    skip = IGNORED + skip
    meta, ref_tensors = gguf_view(gguf_path, skip=tuple(k for k in skip if k != "general."))
    ours = src.metadata
    assert ours["general.architecture"] == meta["general.architecture"]
    ref_keys = {k for k in meta if not k.startswith(skip)}
    our_keys = {k for k in ours if not k.startswith(skip)}
    assert our_keys - ref_keys == set(extra), "keys we add beyond the converter's"
    assert ref_keys - our_keys == set(), "keys the converter writes that we miss"
    for k in ref_keys:
        a, b = meta[k], ours[k]
        if isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-7), k
        else:
            assert a == b, k

    our_tensors = {n: s for n, _, s in src.tensors}
    if stacked_experts:  # the converter stacks per-expert tensors along ne2; we keep them apart
        for name in [n for n in ref_tensors if "_exps." in n]:
            shape, data = ref_tensors.pop(name)
            base = name.replace("_exps.", ".")
            for e in range(shape[2]):
                ref_tensors[base.replace(".weight", f".{e}.weight")] = (
                    shape[:2], data.reshape(shape[2], -1)[e] if data is not None else None)
    assert set(our_tensors) == set(ref_tensors)
    for name, (shape, data) in ref_tensors.items():
        assert our_tensors[name] == shape, name
        if data is None:
            continue
        mine = ours_f32(src, name).reshape(data.shape)
        if permuted and name.split(".")[-2] in permuted:
            data = unpermute(data.reshape(shape[::-1]), permuted[name.split(".")[-2]]).reshape(data.shape)
        if name in computed:
            np.testing.assert_allclose(mine, data, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(mine, data, err_msg=name)


# ---- the Llama folder: translation, logits, tokenizer, chat template, shards, refusals -------------

LLAMA = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False, rms_norm_eps=1e-5)


@pytest.fixture(scope="module")
def tok(smollm2_path):
    return smollm2_tokenizer(smollm2_path)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tok):
    transformers = require_module("transformers")
    cfg = transformers.LlamaConfig(vocab_size=len(tok), **LLAMA)
    return save_hf_model(tmp_path_factory.mktemp("llama") / "hf", cfg, transformers.LlamaForCausalLM, tok,
                         init_std=0.2)


def test_llama_folder_equals_converter_gguf(llama_dir, tmp_path):
    gguf_path = convert(llama_dir, tmp_path / "llama.gguf")
    src = _core.open_source(str(llama_dir))
    # Q/K: the converter permutes rows for interleaved RoPE; we keep transformers' order and say so.
    assert src.metadata["wrenlm.rope.neox"] is True
    # tokenizer.ggml.add_bos_token: the converter writes False for any 49152-token Llama vocabulary
    # (a Granite quirk); we write False because the tokenizer.json post-processor adds no BOS.
    assert src.metadata["tokenizer.ggml.add_bos_token"] is False
    assert_same_as_converter(src, gguf_path, extra={"wrenlm.rope.neox"}, permuted={"attn_q": 4, "attn_k": 2})


def test_llama3_rope_scaling(tmp_path, tok):
    """Llama 3.x rope scaling becomes the converter's rope_freqs.weight; logits still match."""
    transformers = require_module("transformers")
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64, "rope_theta": 500000.0}
    cfg = transformers.LlamaConfig(vocab_size=len(tok), rope_scaling=rope, **LLAMA)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.LlamaForCausalLM, tok, init_std=0.2)
    src = _core.open_source(str(hf))
    assert "rope_freqs.weight" in {n for n, _, _ in src.tensors}
    assert_same_as_converter(src, convert(hf, tmp_path / "m.gguf"), extra={"wrenlm.rope.neox"},
                             permuted={"attn_q": 4, "attn_k": 2}, computed=frozenset({"rope_freqs.weight"}),
                             skip=("tokenizer.",))
    model = wrenlm.Model(hf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT * 2)
    ours, ref = model.logits(ids), transformers_logits(hf, ids)
    assert float(np.abs(ours - ref).max()) <= RTOL * float(np.abs(ref).max()) + 1e-5


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_llama_folder_logits_match_transformers(tmp_path, tok, dtype):
    """F16/BF16 folders stay F16/BF16 in memory (zero-copy); transformers reads the same rounded
    weights as float32, so the F32 tolerance still applies."""
    transformers = require_module("transformers")
    torch = require_module("torch")
    cfg = transformers.LlamaConfig(vocab_size=len(tok), **LLAMA)
    hf = save_hf_model(tmp_path / "f32", cfg, transformers.LlamaForCausalLM, tok, init_std=0.2)
    if dtype != "float32":
        model = transformers.LlamaForCausalLM.from_pretrained(hf, dtype=getattr(torch, dtype))
        model.save_pretrained(tmp_path / dtype, safe_serialization=True)
        tok.save_pretrained(tmp_path / dtype)
        hf = tmp_path / dtype
    src = _core.open_source(str(hf))
    want = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    assert {d for n, d, _ in src.tensors if n.endswith("attn_q.weight")} == {want}
    assert_folder_logits(hf, argmax=True)


def test_llama_folder_tokenizer_matches_hf_tokenizers(llama_dir):
    tokenizers = require_module("tokenizers")
    ref = tokenizers.Tokenizer.from_file(str(llama_dir / "tokenizer.json"))
    model = wrenlm.Model(llama_dir, n_threads=1)
    for text in CORPUS:
        assert model.tokenize(text) == ref.encode(text).ids, text


def test_llama_folder_chat_template(llama_dir, tok):
    model = wrenlm.Model(llama_dir, n_threads=1)
    assert model.chat_template == tok.chat_template
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is RAG?"}]
    assert model.apply_chat_template(messages) == tok.apply_chat_template(messages, tokenize=False,
                                                                          add_generation_prompt=True)


def test_chat_template_jinja_file(llama_dir, tmp_path):
    """A template in chat_template.jinja (transformers 5 writes it there) is read when
    tokenizer_config.json has none; tokenizer_config.json's wins when both exist."""
    d = tmp_path / "m"
    d.mkdir()
    for f in llama_dir.iterdir():
        (d / f.name).symlink_to(f)
    (d / "chat_template.jinja").unlink(missing_ok=True)
    (d / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    cfg = json.loads((llama_dir / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").unlink()
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert _core.open_source(str(d)).metadata["tokenizer.chat_template"] == "{{ messages[0]['content'] }}"
    cfg["chat_template"] = "from config"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert _core.open_source(str(d)).metadata["tokenizer.chat_template"] == "from config"


def test_sharded_folder_loads_identically(llama_dir, tmp_path):
    transformers = require_module("transformers")
    model = transformers.LlamaForCausalLM.from_pretrained(llama_dir)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, safe_serialization=True, max_shard_size="2MB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (sharded / f).write_bytes((llama_dir / f).read_bytes())
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("*.safetensors"))) > 1
    a, b = _core.open_source(str(llama_dir)), _core.open_source(str(sharded))
    assert sorted(a.tensors) == sorted(b.tensors)
    for name, _, _ in a.tensors:
        assert a.tensor_bytes(name) == b.tensor_bytes(name), name
    ids = wrenlm.Model(llama_dir, n_threads=1).tokenize(PROMPT)
    np.testing.assert_array_equal(wrenlm.Model(sharded, kv_cache="f32", n_threads=2).logits(ids),
                                  wrenlm.Model(llama_dir, kv_cache="f32", n_threads=2).logits(ids))

    # The index is validated: a tensor in a missing shard, or not in the shard named.
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    name, shard = next(iter(index["weight_map"].items()))
    other = next(s for s in set(index["weight_map"].values()) if s != shard)
    for bad, match in ((dict(index["weight_map"], **{name: "nope.safetensors"}), "does not exist"),
                       (dict(index["weight_map"], **{name: other}), "does not hold tensor"),
                       (dict(index["weight_map"], **{name: "../x.safetensors"}), "inside the folder")):
        (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": bad}))
        with pytest.raises(wrenlm.FormatError, match=match):
            _core.open_source(str(sharded))


def test_pickle_weights_are_refused(llama_dir, tmp_path):
    """A folder with only PyTorch pickle weights is refused before anything is unpickled."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    model = transformers.LlamaForCausalLM.from_pretrained(llama_dir)
    d = tmp_path / "pickle"
    d.mkdir()
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (d / f).write_bytes((llama_dir / f).read_bytes())
    with pytest.raises(wrenlm.FormatError, match="pytorch_model.bin.*safe_serialization=True"):
        wrenlm.Model(d)
    for name in ("weights.pt", "model.pth"):
        e = tmp_path / name.split(".")[0]
        e.mkdir()
        (e / "config.json").write_text('{"model_type": "llama"}')
        (e / name).write_bytes(b"\x80\x02}q\x00.")
        with pytest.raises(wrenlm.FormatError, match="pickle"):
            _core.open_source(str(e))


def test_bad_config_names_file_and_json_path(llama_dir, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for f in llama_dir.iterdir():
        if f.name != "config.json":
            (d / f.name).symlink_to(f)
    cfg = json.loads((llama_dir / "config.json").read_text())
    for change, match in (({"num_hidden_layers": "2"},
                           r"config\.json: \$\.num_hidden_layers: expected an integer, found string"),
                          ({"model_type": "nope"}, "model_type 'nope' is not supported"),
                          ({"rope_parameters": {"rope_type": "linear", "factor": "x", "rope_theta": 1e4}},
                           r"\$\.rope_parameters\.factor: expected a number, found string")):
        (d / "config.json").write_text(json.dumps(dict(cfg, **change)))
        with pytest.raises((wrenlm.FormatError, wrenlm.UnsupportedError), match=match):
            _core.open_source(str(d))
    (d / "config.json").write_text("{\"model_type\": \"llama\",}")
    with pytest.raises(wrenlm.FormatError, match=r"config\.json: invalid JSON at byte 23"):
        _core.open_source(str(d))
    (d / "config.json").unlink()
    with pytest.raises(wrenlm.FormatError, match="config.json"):
        _core.open_source(str(d))
    with pytest.raises(wrenlm.FormatError, match="folder without config.json"):
        _core.open_source(str(_empty(tmp_path)))


def _empty(tmp_path: Path) -> Path:
    e = tmp_path / "empty"
    e.mkdir(exist_ok=True)
    return e


# ---- every family: the folder vs the converter's GGUF ----------------------------------------------

def train_sentencepiece(out: Path) -> Path:
    """A small SentencePiece BPE model (byte fallback), for the converter paths that need tokenizer.model."""
    spm = require_module("sentencepiece")
    import io

    text = [PROMPT, "Hello world! 12345 + 678 = ?", "Ünïcödé façade naïve café 日本語のテキスト 😀",
            "  leading spaces\tand tabs\nnew lines"] * 50
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=buf, vocab_size=400, model_type="bpe",
                                   byte_fallback=True, character_coverage=1.0, split_digits=True)
    out.write_bytes(buf.getvalue())
    return out


def wordpiece_tokenizer():
    """A small lowercasing WordPiece tokenizer (BERT-style), trained by HF tokenizers."""
    tokenizers = require_module("tokenizers")
    transformers = require_module("transformers")
    text = [PROMPT, "Hello world! 12345 + 678 = ?", "Ünïcödé façade naïve café 日本語のテキスト"] * 20
    wp = tokenizers.implementations.BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(text, vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return transformers.BertTokenizerFast(tokenizer_object=wp._tokenizer, unk_token="[UNK]", sep_token="[SEP]",
                                          pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")


DECODER = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=512)
GEMMA = dict(DECODER, head_dim=16, query_pre_attn_scalar=16)  # GGUF has no key for another query scale
# family: (config class, model class, config, converter pre-tokenizer pin, needs tokenizer.model)
FAMILIES = {
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(DECODER, sliding_window=None), None, False),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM",
                dict(DECODER, intermediate_size=96, num_local_experts=4, num_experts_per_tok=2), None, False),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", DECODER, "gpt-2", False),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", GEMMA, None, True),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(GEMMA, sliding_window=32), None, True),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(GEMMA, sliding_window=32), None, False),
    "phi3": ("Phi3Config", "Phi3ForCausalLM",
             dict(DECODER, num_key_value_heads=4, original_max_position_embeddings=512, pad_token_id=0), None, True),
    # LongRoPE: rope_factors_short/long and rope.scaling.attn_factor from config.json
    "phi3_longrope": ("Phi3Config", "Phi3ForCausalLM",
                      dict(DECODER, original_max_position_embeddings=128, pad_token_id=0, rope_scaling={
                          "type": "longrope", "short_factor": [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
                          "long_factor": [1.1, 1.7, 2.3, 2.9, 3.1, 3.3, 3.7, 3.9]}), None, True),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, n_positions=512, n_ctx=512),
             "gpt-2", False),
    "bloom": ("BloomConfig", "BloomForCausalLM", dict(hidden_size=64, n_layer=2, n_head=4), "gpt-2", False),
    "bert": ("BertConfig", "BertModel", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=128, max_position_embeddings=128), "default", False),
}


@pytest.fixture(scope="module")
def family_models(tmp_path_factory, tok):
    """Every family's tiny folder, and its GGUF from the converter (one process converts them all)."""
    transformers = require_module("transformers")
    root = tmp_path_factory.mktemp("families")
    spm_model = train_sentencepiece(root / "tokenizer.model")
    bert_tok = wordpiece_tokenizer()
    out = {}
    for fam, (cfg_cls, model_cls, kw, pre, needs_spm) in FAMILIES.items():
        t = bert_tok if fam == "bert" else tok
        cfg = getattr(transformers, cfg_cls)(vocab_size=len(t), **kw)
        hf = save_hf_model(root / fam / "hf", cfg, getattr(transformers, model_cls), t, init_std=0.2)
        if needs_spm:  # the converter reads these families' vocabulary from tokenizer.model only
            (hf / "tokenizer.model").write_bytes(spm_model.read_bytes())
        if fam == "bert":  # a sentence-transformers folder: pooling from modules.json
            (hf / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type":
                                                          "sentence_transformers.models.Transformer"},
                                                         {"idx": 1, "name": "1", "path": "1_Pooling", "type":
                                                          "sentence_transformers.models.Pooling"}]))
            (hf / "1_Pooling").mkdir()
            (hf / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
        out[fam] = (hf, root / fam / "model-f32.gguf", pre)
    convert_all([(hf, gguf, pre) for hf, gguf, pre in out.values()])
    return {fam: (hf, gguf) for fam, (hf, gguf, _) in out.items()}


def convert_all(jobs: list[tuple[Path, Path, str | None]]) -> None:
    """convert() for several folders in one interpreter (the converter's imports cost most of its time)."""
    script = converter_script()
    code = f"import sys, runpy\nsys.path.insert(0, {str(script.parent)!r})\nimport conversion.base as b\n"
    code += "orig = b.TextModel.get_vocab_base_pre\n"
    for hf, out, pre in jobs:
        code += (f"b.TextModel.get_vocab_base_pre = (lambda self, tok: {pre!r}) if {pre!r} else orig\n"
                 f"sys.argv = [{str(script)!r}, {str(hf)!r}, '--outtype', 'f32', '--outfile', {str(out)!r}]\n"
                 f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed:\n{proc.stderr[-4000:]}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_folder_equals_converter_gguf(family_models, family):
    """Model keys, tensor names, shapes and F32 values as the converter writes them. Tokenizer keys are
    compared for BERT (WordPiece); the decoder families reuse one byte-level BPE tokenizer whose keys the
    Llama test compares (and the SentencePiece ones read tokenizer.model in the converter)."""
    hf, gguf_path = family_models[family]
    src = _core.open_source(str(hf))
    skip = () if family == "bert" else ("tokenizer.",)
    if family in ("mistral", "mixtral"):  # Llama architecture: Q/K in transformers' order, said in metadata
        n_kv = FAMILIES[family][2]["num_key_value_heads"]
        assert_same_as_converter(src, gguf_path, extra={"wrenlm.rope.neox"}, skip=skip,
                                 permuted={"attn_q": 4, "attn_k": n_kv}, stacked_experts=family == "mixtral")
    else:
        assert_same_as_converter(src, gguf_path, skip=skip)


def test_bert_wordpiece_tokens(family_models):
    """llama.cpp's WordPiece vocabulary: word starts carry U+2581, continuations drop '##'."""
    hf, _ = family_models["bert"]
    meta = _core.open_source(str(hf)).metadata
    vocab = json.loads((hf / "tokenizer.json").read_text())["model"]["vocab"]
    cont = next(t for t in vocab if t.startswith("##"))
    word = next(t for t in vocab if t.isalpha() and len(t) > 2)
    assert meta["tokenizer.ggml.tokens"][vocab[cont]] == cont[2:]
    assert meta["tokenizer.ggml.tokens"][vocab[word]] == "\u2581" + word
    assert meta["tokenizer.ggml.tokens"][vocab["[CLS]"]] == "[CLS]"


# ---- tokenizer.json -> tokenizer keys --------------------------------------------------------------

def with_tokenizer(llama_dir: Path, out: Path, edit) -> Path:
    out.mkdir()
    for f in llama_dir.iterdir():
        if f.name != "tokenizer.json":
            (out / f.name).symlink_to(f)
    t = json.loads((llama_dir / "tokenizer.json").read_text())
    edit(t)
    (out / "tokenizer.json").write_text(json.dumps(t))
    return out


@pytest.mark.parametrize("name", sorted(PRE_TOKENIZERS))
def test_byte_level_pre_tokenizers_from_tokenizer_json(llama_dir, tmp_path, name):
    """The pre-tokenizer is recognised from tokenizer.json's regexes, and our tokenizer then gives HF
    tokenizers' ids on the mixed corpus (same vocabulary and merges, different splitting)."""
    tokenizers = require_module("tokenizers")
    d = with_tokenizer(llama_dir, tmp_path / "m", lambda t: t.update(pre_tokenizer=PRE_TOKENIZERS[name]))
    assert _core.open_source(str(d)).metadata["tokenizer.ggml.pre"] == name.split(" ")[0]
    ref = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    model = wrenlm.Model(d, n_threads=1)
    extra = ["12 345 6789 1234567", "don't DON'T we'VE", "x\r\n\r\ny  \n z",
             "\u3000。 ａｂ１ K\u212a\u1fd3 \u0301e ٣ (a|b) …  नमस्ते। 가나 ترجمة، ok.  "]
    for text in CORPUS + list(HOSTILE_CORPUS.values()) + extra:
        assert model.tokenize(text) == ref.encode(text).ids, (name, text)


@pytest.mark.parametrize("pre,normalizer,match", [
    (seq(split(r"\p{L}+|\p{N}+"), byte_level(False)), None, "unknown regex"),
    (seq(split(GPT2_RE, behavior="Removed"), byte_level(False)), None, "not isolated"),
    (byte_level(True, add_prefix_space=True), None, "add_prefix_space"),
    (seq({"type": "Whitespace"}, byte_level(True)), None, "Whitespace"),
    (byte_level(True), {"type": "Lowercase"}, "Lowercase normalizer"),
    (None, None, "without a pre-tokenizer"),
])
def test_unknown_pre_tokenizer_is_unsupported(llama_dir, tmp_path, pre, normalizer, match):
    d = with_tokenizer(llama_dir, tmp_path / "m", lambda t: t.update(pre_tokenizer=pre, normalizer=normalizer))
    with pytest.raises(wrenlm.UnsupportedError, match=match):
        _core.open_source(str(d))


def test_malformed_tokenizer_json_is_format_error(llama_dir, tmp_path):
    for k, (edit, match) in enumerate([
        (lambda t: t["model"].update(vocab=[1, 2]), r"\$\.model\.vocab: expected an object, found array"),
        (lambda t: t["model"]["vocab"].update({"x": -5}), r"\$\.model\.vocab\.x: token id must be"),
        (lambda t: t["model"].update(merges=[["a", "b", "c"]]), r"\$\.model\.merges\[0\]: expected a merge"),
        (lambda t: t["added_tokens"][0].update(special="yes"), r"\$\.added_tokens\[0\]\.special: expected a bool"),
        (lambda t: t.pop("model"), r"required key \"model\" is missing"),
    ]):
        d = with_tokenizer(llama_dir, tmp_path / f"m{k}", edit)
        with pytest.raises(wrenlm.FormatError, match=match):
            _core.open_source(str(d))


def sentencepiece_bpe_tokenizer(spm_model: Path, prepend_scheme: str = "first"):
    """A Llama-2-style tokenizer.json (BPE with byte fallback) built from a SentencePiece model with HF
    tokenizers, wrapped for transformers. prepend_scheme "prepend": the Prepend + Replace normalizer of
    Llama 2 and Mistral's original files; otherwise the newer Metaspace pre-tokenizer with that
    prepend_scheme ("first", as recent tokenizers convert them, or "always")."""
    spm = require_module("sentencepiece")
    tokenizers = require_module("tokenizers")
    transformers = require_module("transformers")
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    merges = []
    for piece in sorted(vocab, key=vocab.get):  # merges in the order of the pieces they make
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))]
        merges += sorted(((a, b) for a, b in splits if a in vocab and b in vocab),
                         key=lambda p: (vocab[p[0]], vocab[p[1]]))
    t = tokenizers.Tokenizer(tokenizers.models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if prepend_scheme == "prepend":
        n = tokenizers.normalizers
        t.normalizer = n.Sequence([n.Prepend("\u2581"), n.Replace(" ", "\u2581")])
    else:
        t.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend_scheme,
                                                              split=False)
    d = tokenizers.decoders
    t.decoder = d.Sequence([d.Replace("\u2581", " "), d.ByteFallback(), d.Fuse(), d.Strip(" ", 1, 0)])
    t.post_processor = tokenizers.processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                                special_tokens=[("<s>", 1)])
    t.add_special_tokens(["<unk>", "<s>", "</s>"])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>")


def test_sentencepiece_bpe_tokenizer_keys(tmp_path):
    """A Llama-2-style tokenizer.json becomes tokenizer model 'llama': tokens and token types as the
    converter writes them (bytes <0xNN> typed BYTE, specials CONTROL), BOS added as the template says.
    The converter writes every score as -1000 and no merges; we write the merges, and scores that rank
    each token by the merge that makes it, so highest-score-first merging follows the merge list."""
    transformers = require_module("transformers")
    tk = sentencepiece_bpe_tokenizer(train_sentencepiece(tmp_path / "sp.model"))
    cfg = transformers.LlamaConfig(vocab_size=len(tk), **LLAMA)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.LlamaForCausalLM, tk, init_std=0.2)
    meta, _ = gguf_view(convert(hf, tmp_path / "m.gguf"))
    ours = _core.open_source(str(hf)).metadata
    for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
              "tokenizer.ggml.add_bos_token"):
        assert ours[k] == meta[k], k
    assert ours["tokenizer.ggml.model"] == "llama" and ours["tokenizer.ggml.add_bos_token"] is True
    merges = json.loads((hf / "tokenizer.json").read_text())["model"]["merges"]
    assert ours["tokenizer.ggml.merges"] == [" ".join(m) for m in merges]
    scores, tokens = ours["tokenizer.ggml.scores"], ours["tokenizer.ggml.tokens"]
    for rank, (a, b) in enumerate(merges[:50]):
        assert scores[tokens.index(a + b)] >= -rank


def test_corrupted_folder_files_never_crash(llama_dir, tmp_path):
    """300 random byte flips in config.json, tokenizer_config.json and the safetensors header: each
    folder either opens or raises FormatError / UnsupportedError, never anything else."""
    import random

    rng = random.Random(1)
    for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
        good = (llama_dir / name).read_bytes()
        limit = len(good) if name.endswith(".json") else 8 + int.from_bytes(good[:8], "little")
        for k in range(100):
            d = tmp_path / f"{name}-{k}"
            d.mkdir()
            for f in llama_dir.iterdir():
                if f.name != name:
                    (d / f.name).symlink_to(f)
            b = bytearray(good)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(limit)] = rng.randrange(256)
            (d / name).write_bytes(bytes(b))
            try:
                _core.open_source(str(d))
            except (wrenlm.FormatError, wrenlm.UnsupportedError):
                pass


def test_gpt_neo_folder(tmp_path, tok):
    """GPT-Neo has no llama.cpp converter to compare with: its names follow GPT-2's, its local layers
    are a bool per layer in gpt_neo.attention.sliding_window_pattern, and every HF tensor is mapped
    with its shape reversed (ggml order)."""
    transformers = require_module("transformers")
    cfg = transformers.GPTNeoConfig(vocab_size=len(tok), hidden_size=64, num_layers=4, num_heads=4, window_size=32,
                                    attention_types=[[["global", "local"], 2]], max_position_embeddings=512)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.GPTNeoForCausalLM, tok, init_std=0.2)
    src = _core.open_source(str(hf))
    m = src.metadata
    assert m["general.architecture"] == "gpt_neo"
    assert (m["gpt_neo.block_count"], m["gpt_neo.embedding_length"], m["gpt_neo.attention.head_count"]) == (4, 64, 4)
    assert m["gpt_neo.attention.sliding_window"] == 32
    assert m["gpt_neo.attention.sliding_window_pattern"] == [False, True, False, True]
    st = require_module("safetensors.numpy")
    hf_tensors = st.load_file(str(hf / "model.safetensors"))
    ours = {n: s for n, _, s in src.tensors}
    assert ours["blk.3.attn_q.weight"] == [64, 64] and ours["position_embd.weight"] == [64, 512]
    expected = sum(1 for n in hf_tensors if not n.endswith(("attn.attention.bias", "attn.attention.masked_bias")))
    assert len(ours) == expected
    np.testing.assert_array_equal(ours_f32(src, "blk.1.ffn_up.weight"),
                                  hf_tensors["transformer.h.1.mlp.c_fc.weight"].reshape(-1))


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"bert"}))
def test_family_folder_logits_match_transformers(family_models, family):
    """Each decoder family runs straight from its folder, within test_architectures.py's tolerance."""
    hf, _ = family_models[family]
    assert_folder_logits(hf, argmax=False)


@pytest.mark.parametrize("extra", [{"attention_factor": 1.3}, {"factor": 8.0}])
def test_phi3_longrope_explicit_attention_factor(tmp_path, tok, extra):
    """A config's own attention_factor, or a factor replacing max/original positions, sets LongRoPE's
    attention factor as in transformers (llama.cpp's converter ignores both and would write
    sqrt(1 + ln 4 / ln 128) here)."""
    transformers = require_module("transformers")
    kw = FAMILIES["phi3_longrope"][2]
    cfg = transformers.Phi3Config(vocab_size=len(tok), **dict(kw, rope_scaling={**kw["rope_scaling"], **extra}))
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.Phi3ForCausalLM, tok, init_std=0.2)
    assert_folder_logits(hf, argmax=False)


def test_bert_folder_tokenizer_and_embeddings(family_models):
    """A sentence-transformers BERT folder: WordPiece ids equal HF tokenizers', and mean-pooled
    embeddings equal transformers' hidden states averaged over the tokens (1e-4 relative: F32 weights)."""
    tokenizers = require_module("tokenizers")
    torch = require_module("torch")
    transformers = require_module("transformers")
    hf, _ = family_models["bert"]
    assert _core.open_source(str(hf)).metadata["bert.pooling_type"] == 1
    ref_tok = tokenizers.Tokenizer.from_file(str(hf / "tokenizer.json"))
    model = wrenlm.Model(hf, kv_cache="f32", n_threads=2)
    for text in CORPUS[:8]:
        assert model.tokenize(text) == ref_tok.encode(text).ids, text
    texts = ["The quick brown fox.", "Hello world! 12345"]
    ours = model.embed(texts, normalize=False)
    ref_model = transformers.BertModel.from_pretrained(hf).eval()
    for k, text in enumerate(texts):
        ids = ref_tok.encode(text).ids
        with torch.no_grad():
            h = ref_model(torch.tensor([ids])).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(ours[k], h, rtol=1e-4, atol=1e-4 * float(np.abs(h).max()))


# Texts where the schemes differ: leading spaces, special tokens in the middle, and at the start.
SPM_SECTION_TEXTS = ["Hello", " Hello", "  two  spaces", " ", "", "a</s>b", "a</s> b", "<s>Hello</s>x",
                     "Hi <s> there</s>", "</s>", "</s> ", "x\n y", "<unk> <unk>x", "\t tab"]


@pytest.mark.parametrize("prepend_scheme", ["prepend", "first", "always"])
def test_sentencepiece_bpe_folder_tokenizes_like_hf(tmp_path, prepend_scheme):
    """A Llama-2-style tokenizer.json gives HF tokenizers' ids and text through our SentencePiece BPE.
    The Prepend normalizer puts U+2581 before every stretch between added tokens (as llama.cpp does);
    Metaspace puts none before a stretch that starts with a space, and with "first" none after an
    added token."""
    transformers = require_module("transformers")
    tokenizers = require_module("tokenizers")
    tk = sentencepiece_bpe_tokenizer(train_sentencepiece(tmp_path / "sp.model"), prepend_scheme=prepend_scheme)
    cfg = transformers.LlamaConfig(vocab_size=len(tk), **LLAMA)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.LlamaForCausalLM, tk, init_std=0.2)
    ref = tokenizers.Tokenizer.from_file(str(hf / "tokenizer.json"))
    t = _core.Tokenizer(str(hf))
    for text in CORPUS + list(HOSTILE_CORPUS.values()) + SPM_SECTION_TEXTS:
        for special in (True, False):
            assert t.encode(text, add_bos=special) == ref.encode(text, add_special_tokens=special).ids, text
        ids = ref.encode(text).ids
        assert t.decode(ids) == ref.decode(ids, skip_special_tokens=False), text
        assert t.decode(ids, skip_special=True) == ref.decode(ids, skip_special_tokens=True), text
