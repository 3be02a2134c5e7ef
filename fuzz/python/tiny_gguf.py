"""A tiny random Llama as a GGUF file, written with gguf-py: the model of fuzz_model_args.py and the
seeds of fuzz_model_load (fuzz/make_seeds.py)."""

from __future__ import annotations

import numpy as np


def gpt2_byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table, as byte-level BPE vocabularies spell bytes."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_tiny_llama(path: str, *, dim: int = 64, ffn: int = 128, n_head: int = 4, n_kv: int = 2, n_layer: int = 1,
                     n_vocab: int = 300, matrix_type: str = "F32") -> None:
    """A Llama of n_layer layers with random weights and a byte-level BPE vocabulary of n_vocab (>= 269)
    tokens. matrix_type: "F32", "F16" or "Q8_0" for the layers' matrices (Q8_0 needs dims divisible by 32)."""
    import gguf

    rng = np.random.default_rng(0)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["\u0120 t", "h e", "\u0120t he", "i n", "e r", "a n", "\u0120 a", "o n", "r e", "\u0120 s"]
    tokens = specials + gpt2_byte_chars() + [m.replace(" ", "") for m in merges]
    tokens += [f"<extra{i}>" for i in range(n_vocab - len(tokens))]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("fuzz tiny llama")
    w.add_context_length(128)
    w.add_embedding_length(dim)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def mat(name: str, rows: int, cols: int) -> None:
        m = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)
        if matrix_type == "F16":
            w.add_tensor(name, m.astype(np.float16))
        elif matrix_type == "Q8_0":
            q = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(m, q), raw_dtype=q)
        else:
            w.add_tensor(name, m)

    head_dim = dim // n_head
    w.add_tensor("token_embd.weight", (rng.standard_normal((len(tokens), dim)) * 0.1).astype(np.float32))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        mat(f"blk.{i}.attn_q.weight", dim, dim)
        mat(f"blk.{i}.attn_k.weight", n_kv * head_dim, dim)
        mat(f"blk.{i}.attn_v.weight", n_kv * head_dim, dim)
        mat(f"blk.{i}.attn_output.weight", dim, dim)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        mat(f"blk.{i}.ffn_gate.weight", ffn, dim)
        mat(f"blk.{i}.ffn_up.weight", ffn, dim)
        mat(f"blk.{i}.ffn_down.weight", dim, ffn)
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
