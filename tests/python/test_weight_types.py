"""Models stored in each weight type added for issue 12 load and run, and match transformers on the
same file (transformers dequantizes GGUF tensors with gguf-py, independently of us).

The model: a tiny random Llama (hidden 256, so every matrix row is whole 256-weight blocks) written by
llama.cpp's converter, whose every matrix (embedding, attention, MLP, output head) is then replaced by
random valid blocks of the type (quant_blocks.random_blocks: every grid entry and sign pattern occurs),
scaled to a weight standard deviation of 0.1.

Tolerance: the exact path (float activations on dequantized weights, F32 cache) multiplies the same
float32 weights as transformers (our dequantization equals gguf-py's, test_dequant.py), so only
summation order differs: assert_close's 1e-4 x max|logit| and equal argmax, as for F32 files
(test_architectures.py). Greedy generation (F32 cache) multiplies every one of these types with
8-bit activations (as llama.cpp does: the packed kernels of tensor/packed.h, or the int8 decoding of
tensor/decode_i8.h), so it must give transformers' tokens except where the reference's top-2 logits
nearly tie: a divergence is allowed only at a gap under 2% of max|logit|, well inside the 8-bit
path's measured error (up to 9e-2 x max|logit| on SmolLM2, test_logits.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import wrenlm
from conftest import load_transformers_gguf, require_module
from quant_blocks import NEW_TYPES
from tiny_models import SPM_VOCAB_SIZE, assert_close, convert_to_gguf, greedy_ids, random_weight_matrices, save_hf_model

PROMPT = "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2"
N_GREEDY = 8


@pytest.fixture(scope="module")
def tiny_llama_256(tmp_path_factory):
    """The F32 GGUF of a 2-layer Llama with hidden size 256 and the 384-piece SentencePiece vocabulary
    of tiny_models.write_spm_tokenizer (a small vocabulary keeps transformers' GGUF loading fast)."""
    transformers = require_module("transformers")
    cfg = transformers.LlamaConfig(vocab_size=SPM_VOCAB_SIZE, hidden_size=256, intermediate_size=512,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=512, tie_word_embeddings=False, rms_norm_eps=1e-5)
    d = tmp_path_factory.mktemp("tiny_llama_256")
    hf = save_hf_model(d / "hf", cfg, transformers.LlamaForCausalLM, None, init_std=0.1)
    return convert_to_gguf(hf, d / "model-f32.gguf")


@pytest.mark.parametrize("name", NEW_TYPES)
def test_model_in_weight_type_matches_transformers(tiny_llama_256, tmp_path, name):
    torch = require_module("torch")
    seed = NEW_TYPES.index(name)
    path = random_weight_matrices(tiny_llama_256, tmp_path / f"model-{name}.gguf", name, np.random.default_rng(seed))
    model = wrenlm.Model(path, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    ref_model = load_transformers_gguf(str(path))
    with torch.no_grad():
        ref = ref_model(torch.tensor([ids])).logits[0].numpy()
    assert_close(model.logits(ids, exact=True), ref)
    ours = model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True)
    theirs = greedy_ids(ref_model, ids, N_GREEDY)
    if ours != theirs:
        k = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        with torch.no_grad():
            logits = ref_model(torch.tensor([ids + theirs[:k]])).logits[0, -1].numpy()
        # Generation quantizes activations to 8 bits: through this tiny random model that moves the
        # logits by 1.6-7.6% of max|logit| (measured for every type here, the K-quants included). A
        # divergence is explained when the reference's top-2 gap is within what that deviation can
        # swap (twice the fast path's largest error at that position), and the deviation itself stays
        # under 10%: a broken kernel or decoder gives errors of the order of the logits themselves.
        scale = float(np.abs(logits).max())
        top2 = np.sort(logits)[-2:]
        gap = float(top2[1] - top2[0]) / scale
        err = float(np.abs(model.logits(ids + theirs[:k], exact=False)[-1] - logits).max()) / scale
        print(f"{name}: diverged at {k}, reference top-2 gap {gap:.2e}, fast path error {err:.2e} x max|logit|")
        assert err < 0.1, "the 8-bit activation path is far from the reference"
        assert gap < 2 * err, "divergence is not explained by a near-tie"
