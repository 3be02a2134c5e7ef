"""Tiny random models for the architecture parity tests.

Each model is made once by transformers (random weights from a seeded config, written with
`save_pretrained` as safetensors together with a real tokenizer) and once as GGUF by llama.cpp's own
converter (`convert_hf_to_gguf.py` from the llama-cpp-python sdist, path in $WRENLM_LLAMA_CPP_CONVERT),
so the GGUF side has exactly the tensor names, Q/K permutations and metadata llama.cpp writes. Both
files hold the same weights; transformers on the folder is the oracle for both.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import numpy as np
from conftest import need, require_module


def converter_script() -> Path:
    """llama.cpp's convert_hf_to_gguf.py, or skip/fail (CI extracts it from the sdist, see .ci/run)."""
    env = os.environ.get("WRENLM_LLAMA_CPP_CONVERT")
    if not env or not Path(env).is_file():
        need("llama.cpp convert_hf_to_gguf.py", "set WRENLM_LLAMA_CPP_CONVERT (.ci/run extracts it from the sdist)")
    return Path(env)


def smollm2_tokenizer(smollm2_path: str) -> Any:
    """A real byte-level BPE tokenizer (SmolLM2's 49,152 tokens) as a transformers tokenizer."""
    transformers = require_module("transformers")
    return transformers.AutoTokenizer.from_pretrained(os.path.dirname(smollm2_path),
                                                      gguf_file=os.path.basename(smollm2_path))


# Training text for the SentencePiece tokenizer below (fixed, so the tokenizer is reproducible).
_SPM_CORPUS = ("The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2\n"
               "Once upon a time there was a little model that learned to count: one, two, three, four, five.\n"
               "Tokenizers split text into pieces; transformers turn pieces into vectors and back into text.\n") * 20
SPM_VOCAB_SIZE = 384


def write_spm_tokenizer(out_dir: Path) -> Path:
    """Writes tokenizer.model: a small SentencePiece BPE model (384 pieces, byte fallback; ids
    pad 0, eos 1, bos 2, unk 3 as Gemma's) trained offline on a fixed text, single-threaded, so the
    bytes are the same on every run. For converters that read only SentencePiece (Gemma 1/2, Phi-3)."""
    spm = require_module("sentencepiece")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_SPM_CORPUS.splitlines()), model_writer=buf,
                                   vocab_size=SPM_VOCAB_SIZE, model_type="bpe", character_coverage=1.0,
                                   byte_fallback=True, num_threads=1, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                   minloglevel=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.model"
    path.write_bytes(buf.getvalue())
    return path


def save_hf_model(out_dir: Path, config: Any, model_class: Callable[[Any], Any], tokenizer: Any | None,
                  seed: int = 0, init_std: float | None = None) -> Path:
    """Writes a randomly initialised transformers model (float32, safetensors) and its tokenizer
    (tokenizer None: the SentencePiece model of `write_spm_tokenizer`).

    init_std rescales every weight to that standard deviation: transformers' default init (0.02) leaves
    tiny models with near-uniform logits, which would hide errors; larger weights make them peaked."""
    torch = require_module("torch")
    torch.manual_seed(seed)
    model = model_class(config).to(torch.float32).eval()
    if init_std is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, init_std)
                elif name.endswith("bias"):
                    p.normal_(0.0, init_std)
                else:  # norm weights stay near 1 so activations keep their scale
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.save_pretrained(out_dir, safe_serialization=True)
    if tokenizer is None:
        write_spm_tokenizer(out_dir)
    else:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def convert_to_gguf(hf_dir: Path, out_path: Path, outtype: str = "f32", bpe_pre: str | None = None) -> Path:
    """Runs llama.cpp's converter on a model folder (outtype: f32, f16, bf16, q8_0).

    bpe_pre names the BPE pre-tokenizer outright instead of letting the converter recognise it by
    hashing a test string's tokens. transformers picks the tokenizer class from the model type, so
    SmolLM2's tokenizer saved beside, say, a Qwen2 config is re-wrapped with Qwen2's pre-tokenizer and
    no longer hashes as "smollm"; the vocabulary and merges written are SmolLM2's either way."""
    script = converter_script()
    argv = [str(script), str(hf_dir), "--outtype", outtype, "--outfile", str(out_path)]
    if bpe_pre is None:
        cmd = [sys.executable, *argv]
    else:
        cmd = [sys.executable, "-c",
               "import runpy, sys\n"
               f"sys.argv = {argv!r}\n"
               f"sys.path.insert(0, {str(script.parent)!r})\n"
               "from conversion import base\n"
               f"base.TextModel.get_vocab_base_pre = lambda self, tokenizer: {bpe_pre!r}\n"
               f"runpy.run_path({str(script)!r}, run_name='__main__')\n"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py failed for {hf_dir}:\n{proc.stderr[-4000:]}")
    return out_path


def transformers_logits(hf_dir: Path, ids: list[int]) -> Any:
    """(len(ids), n_vocab) float32 logits of the folder's model under transformers: the oracle."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    torch.set_num_threads(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def transformers_greedy(hf_dir: Path, ids: list[int], n_new: int) -> list[int]:
    """n_new greedy (argmax) tokens after ids under transformers, recomputing the whole sequence each
    step (no cache), so the oracle shares nothing with an incremental decode."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    torch.set_num_threads(2)
    return greedy_ids(transformers.AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval(),
                      ids, n_new)


def greedy_ids(model: Any, ids: list[int], n_new: int) -> list[int]:
    """n_new greedy tokens after ids from a loaded transformers model, by full recomputation per step."""
    import torch

    seq = list(ids)
    with torch.no_grad():
        for _ in range(n_new):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def rewrite_gguf(src_path: Path, out_path: Path, fields: Iterable[Any] | None = None,
                 tensor: Callable[[Any], tuple[Any, Any]] | None = None) -> Path:
    """A copy of src_path with other metadata or tensor data. fields: the metadata to write (gguf-py
    ReaderFields; default: src's own); general.architecture is always src's, and the GGUF.* header
    pseudo-fields are skipped. tensor(reader_tensor) -> (data, ggml type) gives each tensor's new data
    (default: unchanged), which must keep its shape."""
    gguf = require_module("gguf")
    src = gguf.GGUFReader(str(src_path))
    arch = src.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(out_path), arch)
    for field in src.fields.values() if fields is None else fields:
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    data = [(t, *(tensor(t) if tensor else (t.data, t.tensor_type))) for t in src.tensors]
    for t, arr, ttype in data:
        w.add_tensor_info(t.name, arr.shape, arr.dtype, arr.nbytes, ttype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, arr, _ in data:
        w.write_tensor_data(arr)
    w.close()
    return out_path


def replace_vocab(gguf_path: Path, vocab_gguf: str, out_path: Path) -> Path:
    """A copy of gguf_path whose tokenizer.* metadata is vocab_gguf's (same tensors, same other keys).

    For converters that only write SentencePiece vocabularies (Gemma 1/2): the model is made with
    vocab_gguf's vocabulary size and a placeholder tokenizer.model, then given the real BPE vocabulary
    here, so the file loads with a tokenizer wrenlm supports. Logits tests pass token ids to both sides,
    so which vocabulary the file holds does not change what they compare."""
    gguf = require_module("gguf")
    src = gguf.GGUFReader(str(gguf_path))
    voc = gguf.GGUFReader(vocab_gguf)
    fields = [f for f in src.fields.values() if not f.name.startswith("tokenizer.")]
    fields += [f for f in voc.fields.values()
               if f.name.startswith("tokenizer.") and f.name != "tokenizer.chat_template"]
    return rewrite_gguf(gguf_path, out_path, fields=fields)


def random_weight_matrices(gguf_path: Path, out_path: Path, type_name: str, rng: Any, std: float = 0.1) -> Path:
    """A copy of gguf_path whose weight matrices (every 2-D tensor) are random valid blocks of the ggml
    type `type_name` (quant_blocks.random_blocks), scaled so that their weights have about the given
    standard deviation; 1-D tensors (norms, biases) are kept."""
    from quant_blocks import random_blocks

    gguf = require_module("gguf")
    qt = getattr(gguf.GGMLQuantizationType, type_name)
    probe = random_blocks(gguf, type_name, 16, 256 * 4, np.random.default_rng(0), scale=1.0)
    scale = std / float(gguf.quants.dequantize(probe, qt).std())

    def matrix(t: Any) -> tuple[Any, Any]:
        if len(t.shape) != 2:
            return t.data, t.tensor_type
        cols, rows = (int(d) for d in t.shape)
        return random_blocks(gguf, type_name, rows, cols, rng, scale=scale), qt

    return rewrite_gguf(gguf_path, out_path, tensor=matrix)


def assert_close(ours: Any, ref: Any, rtol: float = 1e-4, argmax: bool = True) -> None:
    """ours within rtol x max|ref| (+1e-5 absolute) of ref everywhere, and (for logits) the same
    argmax at every position. The tests state why 1e-4 suits F32 weights and an F32 cache."""

    assert ours.shape == ref.shape
    scale = float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max())
    assert err <= rtol * scale + 1e-5, f"max |diff| {err:.3g} > {rtol} x max|ref| {scale:.3g}"
    if argmax:
        assert (ours.argmax(-1) == ref.argmax(-1)).all()


def fast_path_top1(fast: Any, ref: Any, what: str, clear_gap: float = 1.0) -> int:
    """Positions where the 8-bit activation path's top-1 token equals the reference's. Fails where
    they differ although the reference's top-2 logits are >= clear_gap apart (not a near-tie)."""
    top2 = np.sort(ref, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) >= clear_gap
    same = fast.argmax(-1) == ref.argmax(-1)
    assert same[clear].all(), f"{what}: top-1 differs at a clear position {np.flatnonzero(clear & ~same)}"
    return int(same.sum())
