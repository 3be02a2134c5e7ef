"""Logits parity per architecture on tiny random models: transformers (float32) is the oracle for
both the GGUF written by llama.cpp's converter and (where supported) the Hugging Face folder itself.

Tolerance: F32 weights and an F32 KV cache leave only summation-order differences, which grow with
depth and with the logit scale; 1e-4 x max|logit| (plus 1e-5 absolute) holds with a margin for these
2-layer models and would be broken by any real error (a wrong permutation, norm, scale or mask moves
logits by O(1))."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wrenlm
from conftest import load_transformers_gguf, require_module
from tiny_models import (
    assert_close,
    convert_to_gguf,
    replace_vocab,
    save_hf_model,
    smollm2_tokenizer,
    transformers_greedy,
    transformers_logits,
)

PROMPT = "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2"
RTOL = 1e-4
N_GREEDY = 16


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=False, rms_norm_eps=1e-5)
    d = tmp_path_factory.mktemp("tiny_llama")
    hf = save_hf_model(d / "hf", cfg, transformers.LlamaForCausalLM, tok, init_std=0.2)
    return hf, convert_to_gguf(hf, d / "model-f32.gguf")


def test_llama_gguf_matches_transformers(tiny_llama):
    hf, gguf = tiny_llama
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert_close(model.logits(ids), transformers_logits(hf, ids))


def check_parity(hf, gguf) -> None:
    """Prompt logits within RTOL of transformers', and N_GREEDY greedy tokens (our prefill + KV-cache
    decode against transformers' full recomputation) identical."""
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert_close(model.logits(ids), transformers_logits(hf, ids))
    ours = model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True)
    assert ours == transformers_greedy(hf, ids, N_GREEDY)


def make_tiny(tmp_path_factory, name: str, config, model_class, tokenizer, tokenizer_class: str | None = None):
    """The model with SmolLM2's tokenizer, as a folder and as an F32 GGUF (tokenizer_class: the class
    tokenizer_config.json declares, for converters that look at it)."""
    d = tmp_path_factory.mktemp(name)
    hf = save_hf_model(d / "hf", config, model_class, tokenizer, init_std=0.2)
    if tokenizer_class:
        tc = json.loads((hf / "tokenizer_config.json").read_text())
        tc["tokenizer_class"] = tokenizer_class
        (hf / "tokenizer_config.json").write_text(json.dumps(tc))
    return hf, convert_to_gguf(hf, d / "model-f32.gguf", bpe_pre="smollm")


# -- Qwen2: Q/K/V biases, NeoX RoPE, untied output ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=False, rms_norm_eps=1e-6)
    return make_tiny(tmp_path_factory, "tiny_qwen2", cfg, transformers.Qwen2ForCausalLM, tok)


def test_qwen2_gguf_matches_transformers(tiny_qwen2):
    check_parity(*tiny_qwen2)


# -- Gemma 1 and 2: GeGLU (tanh GELU), sqrt(dim) embedding scale, (1 + w) norms, head size not
# dim/heads; Gemma 2 adds post-norms, soft-capped scores and logits (caps low enough to bite) and
# sliding-window attention on even layers (window smaller than the prompt) ----------------------------

def make_tiny_spm(tmp_path_factory, name: str, config, model_class, smollm2_path: str):
    """Like make_tiny for converters that read only tokenizer.model: the folder gets a placeholder
    SentencePiece model, and the GGUF is then given SmolLM2's vocabulary (config.vocab_size is its size)."""
    d = tmp_path_factory.mktemp(name)
    hf = save_hf_model(d / "hf", config, model_class, None, init_std=0.2)
    spm_gguf = convert_to_gguf(hf, d / "model-spm.gguf")
    return hf, replace_vocab(spm_gguf, smollm2_path, d / "model-f32.gguf")


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    n_vocab = len(smollm2_tokenizer(smollm2_path))
    cfg = transformers.GemmaConfig(vocab_size=n_vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=1, head_dim=24,
                                   max_position_embeddings=512, rms_norm_eps=1e-6)
    return make_tiny_spm(tmp_path_factory, "tiny_gemma", cfg, transformers.GemmaForCausalLM, smollm2_path)


def test_gemma_gguf_matches_transformers(tiny_gemma):
    check_parity(*tiny_gemma)


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    n_vocab = len(smollm2_tokenizer(smollm2_path))
    cfg = transformers.Gemma2Config(vocab_size=n_vocab, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    query_pre_attn_scalar=16, sliding_window=8, attn_logit_softcapping=2.0,
                                    final_logit_softcapping=5.0, max_position_embeddings=512, rms_norm_eps=1e-6)
    assert cfg.layer_types[:2] == ["sliding_attention", "full_attention"]
    return make_tiny_spm(tmp_path_factory, "tiny_gemma2", cfg, transformers.Gemma2ForCausalLM, smollm2_path)


def test_gemma2_gguf_matches_transformers(tiny_gemma2):
    check_parity(*tiny_gemma2)


# -- Gemma 3: GeGLU, sqrt(dim) embedding scale, (1 + w) norms, post-norms, QK-norm, five sliding
# layers per global one (window smaller than the prompt), local and global RoPE bases ------------------

@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    # 7 layers: 0-4 and 6 slide, 5 is global. query_pre_attn_scalar = head_dim, as GGUF assumes.
    cfg = transformers.Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160,
                                        num_hidden_layers=7, num_attention_heads=4, num_key_value_heads=2,
                                        head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
                                        max_position_embeddings=512, rms_norm_eps=1e-6)
    assert cfg.layer_types[5] == "full_attention" and cfg.layer_types[0] == "sliding_attention"
    return make_tiny(tmp_path_factory, "tiny_gemma3", cfg, transformers.Gemma3ForCausalLM, tok)


def test_gemma3_gguf_matches_transformers(tiny_gemma3):
    check_parity(*tiny_gemma3)


# -- Phi-3: fused QKV and gate/up, GQA, sliding window ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_phi3(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.Phi3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                  original_max_position_embeddings=512, sliding_window=8, pad_token_id=0,
                                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    # The converter reads Phi-3's vocabulary from tokenizer.model unless the folder declares a GPT-2
    # style tokenizer (as Phi-4 does); SmolLM2's is one.
    return make_tiny(tmp_path_factory, "tiny_phi3", cfg, transformers.Phi3ForCausalLM, tok,
                     tokenizer_class="GPT2Tokenizer")


def test_phi3_gguf_matches_transformers(tiny_phi3):
    check_parity(*tiny_phi3)


# -- Phi-3 LongRoPE: per-frequency short/long factors and an attention factor ----------------------------
#
# The rule (transformers' longrope_frequency_update): a forward pass over a sequence that is L tokens
# long once its input is in rotates every position with the long factors when L exceeds
# original_max_position_embeddings, else with the short ones; cos and sin are always scaled by
# sqrt(1 + ln(max_position_embeddings / original) / ln(original)). We take L as the length after the
# whole prompt, even when the prompt is evaluated in chunks of the model's max batch (512), so a long
# prompt matches transformers' single forward. llama.cpp differs: it fixes the set by the context
# size (long whenever n_ctx > original), so it disagrees with transformers on short sequences in a
# large context. A generation that crosses the original context decodes its new tokens with the long
# factors against cached keys rotated with the short ones, as transformers' own cached generation
# does; transformers without a cache (recomputing every step) rotates all keys with the long factors
# and so may continue differently from that point.
LONGROPE_ORIG = 520  # above the 512-token prefill chunk, so the chunked long prompt below crosses it


@pytest.fixture(scope="module")
def tiny_phi3_longrope(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    rng = np.random.default_rng(7)
    half = 64 // 4 // 2  # factors per head: half the rotated dimensions
    scaling = {"rope_type": "longrope", "short_factor": rng.uniform(1, 4, half).tolist(),
               "long_factor": rng.uniform(1, 4, half).tolist()}
    cfg = transformers.Phi3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, rope_scaling=scaling,
                                  max_position_embeddings=4 * LONGROPE_ORIG,
                                  original_max_position_embeddings=LONGROPE_ORIG, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, tie_word_embeddings=False)
    return make_tiny(tmp_path_factory, "tiny_phi3_longrope", cfg, transformers.Phi3ForCausalLM, tok,
                     tokenizer_class="GPT2Tokenizer")


def transformers_greedy_cached(hf_dir, ids: list[int], n_new: int) -> list[int]:
    """n_new greedy tokens under transformers with its KV cache (prefill, then one token per step)."""
    torch = require_module("torch")
    transformers = require_module("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    cache, new = None, []
    with torch.no_grad():
        step = torch.tensor([ids])
        for _ in range(n_new):
            out = model(step, cache=cache, use_cache=True)
            cache = out.cache
            new.append(int(out.logits[0, -1].argmax()))
            step = torch.tensor([[new[-1]]])
    return new


@pytest.mark.parametrize("source", ["gguf", "folder"])
def test_phi3_longrope_short_factors(tiny_phi3_longrope, source):
    """A prompt and its continuation inside the original context: the short factors throughout."""
    hf, gguf = tiny_phi3_longrope
    model = wrenlm.Model(gguf if source == "gguf" else hf, kv_cache="f32", n_threads=2)
    ids = model.tokenize(PROMPT)
    assert len(ids) + N_GREEDY <= LONGROPE_ORIG
    assert_close(model.logits(ids), transformers_logits(hf, ids))
    assert model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True) == transformers_greedy(hf, ids, N_GREEDY)


@pytest.mark.parametrize("source", ["gguf", "folder"])
def test_phi3_longrope_long_factors(tiny_phi3_longrope, source):
    """A 600-token prompt, past the original context: the long factors for every position, although
    our prefill takes it in two chunks (512 + 88) of which the first ends inside the original context."""
    hf, gguf = tiny_phi3_longrope
    model = wrenlm.Model(gguf if source == "gguf" else hf, kv_cache="f32", n_threads=2)
    base = model.tokenize(PROMPT)
    ids = (base * (600 // len(base) + 1))[:600]
    assert_close(model.logits(ids), transformers_logits(hf, ids))
    assert model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True) == transformers_greedy(hf, ids, N_GREEDY)


def test_phi3_longrope_crossing_matches_cached_transformers(tiny_phi3_longrope):
    """A prompt just inside the original context whose continuation crosses it: the same tokens as
    transformers' cached generation (short-rotated keys kept, new tokens long-rotated)."""
    hf, gguf = tiny_phi3_longrope
    model = wrenlm.Model(gguf, kv_cache="f32", n_threads=2)
    base = model.tokenize(PROMPT)
    ids = (base * (LONGROPE_ORIG // len(base) + 1))[:LONGROPE_ORIG - 4]
    ours = model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True)
    assert ours == transformers_greedy_cached(hf, ids, N_GREEDY)


# -- Mixtral: 4 SwiGLU experts, top-2 routing (written by llama.cpp as "llama" with stacked experts) -------

@pytest.fixture(scope="module")
def tiny_mixtral(tmp_path_factory, smollm2_path):
    transformers = require_module("transformers")
    tok = smollm2_tokenizer(smollm2_path)
    cfg = transformers.MixtralConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                     num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False,
                                     sliding_window=None)
    return make_tiny(tmp_path_factory, "tiny_mixtral", cfg, transformers.MixtralForCausalLM, tok)


def test_mixtral_gguf_matches_transformers(tiny_mixtral):
    check_parity(*tiny_mixtral)


def test_unknown_architecture_is_unsupported(tmp_path):
    gguf = require_module("gguf")
    path = tmp_path / "mystery.gguf"
    w = gguf.GGUFWriter(str(path), "mystery")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "ab"])
    w.add_token_types([1, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(wrenlm.UnsupportedError, match=r"'mystery'.*supported: .*gemma3.*llama.*phi3.*qwen2"):
        wrenlm.Model(path, n_threads=1)


def test_qwen2_q8_0_matches_transformers(tiny_qwen2, tmp_path):
    """Q8_0 (llama.cpp's converter quantizes) against transformers on the same GGUF dequantized to F32:
    the exact path (float activations on dequantized weights, F32 cache) within RTOL like F32 files;
    the fast path (8-bit activations on the blocks, F16 cache) rounds activations per 32-block, moving
    logits by a few % of their scale in these random models, so the top-1 token may flip where the top
    two nearly tie: >= 85% of positions must agree (a wrong block layout or scale gives ~0%)."""
    hf, _ = tiny_qwen2
    q8 = convert_to_gguf(hf, tmp_path / "model-q8_0.gguf", outtype="q8_0", bpe_pre="smollm")
    torch = require_module("torch")
    with torch.no_grad():
        ref_model = load_transformers_gguf(str(q8))
        ids = wrenlm.Model(q8, n_threads=2).tokenize(PROMPT)
        ref = ref_model(torch.tensor([ids])).logits[0].numpy()
    exact = wrenlm.Model(q8, n_threads=2, kv_cache="f32")
    assert exact.info["quant"] == "Q8_0"
    assert_close(exact.logits(ids, exact=True), ref)
    fast = wrenlm.Model(q8, n_threads=2).logits(ids, exact=False)
    agree = float((fast.argmax(-1) == ref.argmax(-1)).mean())
    assert agree >= 0.85, f"top-1 agreement {agree:.3f}"
