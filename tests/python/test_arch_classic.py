"""Logits parity for the "classic" LayerNorm families — GPT-2, BLOOM, GPT-Neo — on tiny random
models: transformers (float32) on the saved folder is the oracle for the GGUF that llama.cpp's own
converter writes from it (GPT-Neo, which llama.cpp cannot convert, is written with gguf-py under the
tensor names and keys of wrenlm's Hugging Face reader).

Tolerance: F32 weights and an F32 KV cache leave only summation-order differences;
1e-4 x max|logit| (plus 1e-5 absolute) holds with a margin for these 2-3 layer models and is broken
by any real error (a wrong QKV split, LayerNorm bias, GELU variant, ALiBi slope or window moves logits
by O(1)). Greedy continuations must agree token for token (where transformers' top-2 gap is large
enough that float noise cannot flip it, checked below)."""

from __future__ import annotations

import pytest
import wrenlm
from conftest import require_module
from tiny_models import (
    assert_close,
    convert_to_gguf,
    save_hf_model,
    smollm2_tokenizer,
    transformers_greedy,
    transformers_logits,
)

PROMPT = ("The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2 "
          "and then some more words so that the prompt is longer than the local attention window.")
N_GREEDY = 12


def check_family(hf, gguf) -> None:
    """The GGUF file and the Hugging Face folder itself, each against transformers on the folder."""
    ids = wrenlm.Model(gguf, n_threads=2).tokenize(PROMPT)
    ref_logits = transformers_logits(hf, ids)
    ref_greedy = transformers_greedy(hf, ids, N_GREEDY)
    for path in (gguf, hf):
        model = wrenlm.Model(path, kv_cache="f32", n_threads=2)
        assert model.tokenize(PROMPT) == ids
        assert_close(model.logits(ids), ref_logits)
        # Greedy decoding runs the one-token (decode) path over the cache, unlike logits().
        assert model.generate_ids(ids, max_tokens=N_GREEDY, ignore_eos=True) == ref_greedy


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    return smollm2_tokenizer(smollm2_path)


def test_gpt2(tmp_path, tokenizer):
    transformers = require_module("transformers")
    # n_ctx: GPT-2's config.json carries it (the converter reads it); transformers no longer writes it itself.
    cfg = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_ctx=256, n_embd=64, n_layer=2,
                                  n_head=4, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.GPT2LMHeadModel, tokenizer, init_std=0.2)
    gguf = convert_to_gguf(hf, tmp_path / "gpt2-f32.gguf")
    check_family(hf, gguf)
    m = wrenlm.Model(gguf, n_ctx=4096)
    assert m.n_ctx == 256  # learned positions end there
    assert m.info["architecture"] == "gpt2"


def test_bloom_non_power_of_two_heads(tmp_path, tokenizer):
    """6 heads: ALiBi slopes for the 4-head series plus two from the 8-head one (BLOOM's rule)."""
    transformers = require_module("transformers")
    cfg = transformers.BloomConfig(vocab_size=len(tokenizer), hidden_size=72, n_layer=2, n_head=6,
                                   layer_norm_epsilon=1e-5, tie_word_embeddings=True, seq_length=256,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.BloomForCausalLM, tokenizer, init_std=0.2)
    gguf = convert_to_gguf(hf, tmp_path / "bloom-f32.gguf")
    check_family(hf, gguf)


def write_gpt_neo_gguf(hf_dir, out, vocab_gguf: str):
    """GPT-Neo as GGUF with gguf-py (llama.cpp cannot convert it): tensor names and keys as wrenlm's
    Hugging Face reader writes them (llama.cpp conventions; nn.Linear weights need no transpose), the
    vocabulary's tokenizer.* keys copied from the GGUF the tokenizer came from."""
    gguf = require_module("gguf")
    safetensors_numpy = require_module("safetensors.numpy")
    import json

    cfg = json.loads((hf_dir / "config.json").read_text())
    arch = "gpt_neo"
    w = gguf.GGUFWriter(str(out), arch)
    w.add_block_count(cfg["num_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg.get("intermediate_size") or 4 * cfg["hidden_size"])
    w.add_head_count(cfg["num_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    w.add_uint32(f"{arch}.attention.sliding_window", cfg["window_size"])
    local = [kind == "local" for kinds, repeat in cfg["attention_types"] for _ in range(repeat) for kind in kinds]
    w.add_array(f"{arch}.attention.sliding_window_pattern", local)
    reader = gguf.GGUFReader(vocab_gguf)
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(key, field.contents(), field.types[0], sub_type=sub)
    names = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
             "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias"}
    per_layer = {"ln_1": "attn_norm", "attn.attention.q_proj": "attn_q", "attn.attention.k_proj": "attn_k",
                 "attn.attention.v_proj": "attn_v", "attn.attention.out_proj": "attn_output", "ln_2": "ffn_norm",
                 "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for i in range(cfg["num_layers"]):
        for src, dst in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"transformer.h.{i}.{src}.{kind}"] = f"blk.{i}.{dst}.{kind}"
    tensors = safetensors_numpy.load_file(str(hf_dir / "model.safetensors"))
    for name, t in tensors.items():
        if name in names:
            w.add_tensor(names[name], t.astype("float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def test_gpt_neo_local_window(tmp_path, tokenizer, smollm2_path):
    """Alternating global/local layers with a window of 8, far shorter than the prompt."""
    transformers = require_module("transformers")
    cfg = transformers.GPTNeoConfig(vocab_size=len(tokenizer), hidden_size=64, num_layers=4, num_heads=4,
                                    attention_types=[[["global", "local"], 2]], window_size=8,
                                    max_position_embeddings=256, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                                    bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    hf = save_hf_model(tmp_path / "hf", cfg, transformers.GPTNeoForCausalLM, tokenizer, init_std=0.2)
    gguf = write_gpt_neo_gguf(hf, tmp_path / "gpt-neo-f32.gguf", smollm2_path)
    with wrenlm.Model(gguf, n_threads=2) as m:
        assert len(m.tokenize(PROMPT)) > 3 * cfg.window_size
    check_family(hf, gguf)
