"""Regenerates the seed corpora in fuzz/corpus/<target>/ (small files, committed).

Seeds are written by independent writers -- gguf-py's GGUFWriter, the safetensors library, Hugging Face
tokenizers and transformers configs -- so the fuzzers start from what real files look like. Run from
the repository root with the test dependencies installed:

    python fuzz/make_seeds.py

Seeds whose name starts with "crash-" are inputs of fixed findings; this script never deletes them.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "python"))
from tiny_gguf import gpt2_byte_chars, write_tiny_llama  # noqa: E402

CORPUS = ROOT / "corpus"

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog. 12345 + 678 = ?\n  def f(x): return x**2\n",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "caf\u00e9 na\u00efve \u00c9t\u00e9 \u4e2d\u6587\u5b57 \U0001f600\U0001f44d\U0001f3fd",
    "   leading spaces\t\ttabs\r\nwindows\n\n\nnewlines   ",
    "[CLS] hello [SEP] [MASK] <tool> </s> <s> <unk>",
    "don't stop-believing!!! ...?? ,,, 3.14159 1,000,000",
]


def clean(target: str) -> Path:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        if not f.name.startswith("crash-"):
            f.unlink()
    return d


# ---- GGUF ------------------------------------------------------------------------------------------


def gguf_seeds() -> None:
    import gguf

    out = clean("fuzz_gguf")
    with tempfile.TemporaryDirectory() as tmp:
        # 1. Every metadata value type and a few tensor types.
        path = Path(tmp) / "types.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -100)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -30000)
        w.add_uint32("t.u32", 4000000000)
        w.add_int32("t.i32", -2000000000)
        w.add_float32("t.f32", 1.5)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "h\u00e9llo")
        w.add_uint64("t.u64", 2**63 + 5)
        w.add_int64("t.i64", -(2**62))
        w.add_float64("t.f64", -2.25)
        w.add_array("t.arr.int", [1, 2, 3])
        w.add_array("t.arr.str", ["a", "bc", ""])
        w.add_array("t.arr.float", [0.5, -1.0])
        w.add_array("t.arr.nested", [[1, 2], [3]])
        w.add_uint32("llama.block_count", 1)
        w.add_uint32("llama.embedding_length", 32)
        w.add_tensor("f32", np.arange(8, dtype=np.float32))
        w.add_tensor("f16", np.arange(16, dtype=np.float16).reshape(2, 8))
        values = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
        for qtype in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0):
            w.add_tensor(qtype.name.lower(), gguf.quants.quantize(values, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        (out / "types.gguf").write_bytes(path.read_bytes())

        # 2. Small vocabularies of each tokenizer model (metadata only).
        byte_chars = gpt2_byte_chars()
        vocabs = {
            "gpt2": (["<|endoftext|>", *byte_chars, "\u0120t", "he", "\u0120the"],
                     ["\u0120 t", "h e", "\u0120t he"]),
            "llama": (["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], "\u2581", "\u2581the", "a"], []),
            "bert": (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581the", "the", "\u2581a", "a"], []),
            "t5": (["<pad>", "</s>", "<unk>", "\u2581", "\u2581the", "t", "h", "e"], []),
        }
        for model, (tokens, merges) in vocabs.items():
            path = Path(tmp) / f"vocab-{model}.gguf"
            w = gguf.GGUFWriter(str(path), "llama")
            w.add_tokenizer_model(model)
            if model == "gpt2":
                w.add_tokenizer_pre("qwen2")
            w.add_token_list(tokens)
            types = [1] * len(tokens)
            for i, t in enumerate(tokens):
                if t.startswith("<0x"):
                    types[i] = 6
                elif t.startswith(("<", "[")) and t not in ("<unk>", "[UNK]"):
                    types[i] = 3
                elif t in ("<unk>", "[UNK]"):
                    types[i] = 2
            w.add_token_types(types)
            if model in ("llama", "t5"):
                w.add_token_scores([-float(i) for i in range(len(tokens))])
            if merges:
                w.add_token_merges(merges)
            w.add_bos_token_id(1 if model != "gpt2" else 0)
            w.add_eos_token_id(2 if model != "gpt2" else 0)
            if model in ("llama", "t5", "bert"):
                w.add_unk_token_id(1 if model == "bert" else (0 if model == "llama" else 2))
            w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            (out / f"vocab-{model}.gguf").write_bytes(path.read_bytes())


# ---- safetensors -------------------------------------------------------------------------------------


def safetensors_seeds() -> None:
    import torch
    from safetensors.torch import save

    out = clean("fuzz_safetensors")
    (out / "f32.safetensors").write_bytes(save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}))
    (out / "mixed.safetensors").write_bytes(save({
        "a.weight": torch.ones(4, 2, dtype=torch.float16),
        "b.weight": torch.ones(3, dtype=torch.bfloat16),
        "ids": torch.arange(3, dtype=torch.int64),
        "scalar": torch.tensor(1.0),
        "empty": torch.zeros(0, 4),
    }, metadata={"format": "pt"}))
    header = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (out / "handmade.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\x80?")


# ---- config.json / tokenizer.json -----------------------------------------------------------------------


def hf_json_seeds() -> None:
    """Mode byte + document (see fuzz/targets/fuzz_hf_json.cpp): 0 any JSON, 1 config.json,
    2 tokenizer.json, 3 tokenizer_config.json."""
    import transformers as tr

    out = clean("fuzz_hf_json")
    small = dict(hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1, vocab_size=64)
    configs = {
        "llama": tr.LlamaConfig(num_key_value_heads=1, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                       "original_max_position_embeddings": 32},
                                **small),
        "qwen2": tr.Qwen2Config(num_key_value_heads=1, **small),
        "gemma": tr.GemmaConfig(num_key_value_heads=1, head_dim=4, **small),
        "gemma3": tr.Gemma3TextConfig(num_key_value_heads=1, head_dim=4, sliding_window=4, **small),
        "phi3": tr.Phi3Config(num_key_value_heads=2, **small),
        "gpt2": tr.GPT2Config(n_embd=8, n_head=2, n_layer=1, vocab_size=64, n_positions=32),
        "gpt_neo": tr.GPTNeoConfig(hidden_size=8, num_heads=2, num_layers=2, vocab_size=64,
                                   attention_types=[[["global", "local"], 1]], window_size=4),
        "bloom": tr.BloomConfig(hidden_size=8, n_head=2, n_layer=1, vocab_size=64),
        "bert": tr.BertConfig(**small),
    }
    for name, c in configs.items():
        (out / f"config-{name}.json").write_bytes(b"\x01" + c.to_json_string().encode())
    for name, text in tokenizer_jsons().items():
        (out / f"tokenizer-{name}.json").write_bytes(b"\x02" + text.encode())
    (out / "tokenizer_config.json").write_bytes(b"\x03" + json.dumps({
        "bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>", "add_prefix_space": False,
        "chat_template": [{"name": "default", "template": "{{ messages[0]['content'] }}"},
                          {"name": "tool_use", "template": "{{ tools }}"}],
    }).encode())
    (out / "any.json").write_bytes(b"\x00" + json.dumps({
        "a": [1, -2.5e-3, 1e308, True, None, "\u00e9\\\"\ud83d\ude00"], "b": {"c": {"d": []}}, "e": 12345678901234567,
    }).encode())


def tokenizer_jsons() -> dict[str, str]:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = TEXTS * 3
    out = {}

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                                         "<|im_end|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    out["bytelevel"] = bpe.to_str()
    llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(llama3), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    out["llama3"] = bpe.to_str()

    spm = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    spm.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    spm.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    spm.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                                        initial_alphabet=[f"<0x{b:02X}>" for b in range(256)]))
    out["spm-bpe"] = spm.to_str()

    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]",
                                                                                             "[SEP]", "[MASK]"]))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                      special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    out["wordpiece"] = wp.to_str()
    return out


# ---- tokenizer, sampler ---------------------------------------------------------------------------------


def tokenizer_seeds() -> None:
    """Configuration byte + text (fuzz/targets/fuzz_tokenizer.cpp has 21 configurations)."""
    out = clean("fuzz_tokenizer")
    for cfg in range(21):
        for k, text in enumerate(TEXTS[cfg % 3::3]):
            (out / f"cfg{cfg:02d}-{k}").write_bytes(bytes([cfg]) + text.encode())
    (out / "invalid-utf8").write_bytes(b"\x00\xff\xfe\xc3(\xe2\x82\xf0\x9f\x98 ok \xed\xa0\x80")
    (out / "ids").write_bytes(b"\x0b" + struct.pack("<8i", 0, 1, 2, 255, 256, 100000, -1, 2**31 - 1))


def sampler_seeds() -> None:
    """Layout in fuzz/targets/fuzz_sampler.cpp."""
    out = clean("fuzz_sampler")
    logits = np.array([1.0, 2.0, 0.5, -1.0, 3.0, 3.0, -np.inf, 0.0] * 4, dtype=np.float32).tobytes()
    scaled = bytes([0, 45, 3, 230, 10, 80, 16]) + bytes([3]) + struct.pack("<3i", 4, 5, 1)
    (out / "scaled").write_bytes(scaled + logits)
    (out / "greedy").write_bytes(bytes([0, 0, 0, 255, 0, 48, 0, 0]) + logits)
    raw = bytes([3]) + struct.pack("<fifffi", 0.7, 40, 0.95, 0.05, 1.1, 64) + struct.pack("<Q", 42)
    (out / "raw").write_bytes(raw + bytes([2]) + struct.pack("<2i", 4, 99) + logits)


def model_load_seeds() -> None:
    out = clean("fuzz_model_load")
    with tempfile.TemporaryDirectory() as tmp:
        for matrix_type in ("F32", "Q8_0"):
            path = Path(tmp) / f"llama-{matrix_type}.gguf"
            write_tiny_llama(str(path), dim=32, ffn=64, n_head=2, n_kv=1, n_vocab=272, matrix_type=matrix_type)
            (out / path.name).write_bytes(path.read_bytes())


def python_seeds() -> None:
    for target in ("fuzz_model_args", "fuzz_chat_template"):
        out = clean(target)
        for k, text in enumerate(TEXTS[:4]):
            (out / f"seed{k}").write_bytes(bytes([k * 37 % 256, k]) + text.encode())


def main() -> None:
    gguf_seeds()
    safetensors_seeds()
    hf_json_seeds()
    tokenizer_seeds()
    sampler_seeds()
    model_load_seeds()
    python_seeds()
    for d in sorted(CORPUS.iterdir()):
        size = sum(f.stat().st_size for f in d.iterdir())
        print(f"{d.name}: {len(list(d.iterdir()))} files, {size} bytes")


if __name__ == "__main__":
    main()
