"""Tiny random models for the architecture parity tests.

Each model is made once by transformers (random weights from a seeded config, written with
`save_pretrained` as safetensors together with a real tokenizer) and once as GGUF by llama.cpp's own
converter (`convert_hf_to_gguf.py` from the llama-cpp-python sdist, path in $WRENLM_LLAMA_CPP_CONVERT),
so the GGUF side has exactly the tensor names, Q/K permutations and metadata llama.cpp writes. Both
files hold the same weights; transformers on the folder is the oracle for both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

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


def save_hf_model(out_dir: Path, config: Any, model_class: Callable[[Any], Any], tokenizer: Any,
                  seed: int = 0, init_std: float | None = None) -> Path:
    """Writes a randomly initialised transformers model (float32, safetensors) and its tokenizer.

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
    tokenizer.save_pretrained(out_dir)
    return out_dir


def convert_to_gguf(hf_dir: Path, out_path: Path, outtype: str = "f32") -> Path:
    """Runs llama.cpp's converter on a model folder (outtype: f32, f16, bf16, q8_0)."""
    script = converter_script()
    proc = subprocess.run([sys.executable, str(script), str(hf_dir), "--outtype", outtype, "--outfile", str(out_path)],
                          capture_output=True, text=True, timeout=600)
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
