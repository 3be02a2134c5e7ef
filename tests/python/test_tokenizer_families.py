"""Byte-level BPE families with their own pre-tokenizers (DeepSeek LLM, DeepSeek Coder, Qwen3.5, BLOOM)
and Gemma 4's SentencePiece-style BPE, against independent oracles; every comparison is exact.

Oracles:
  1. Hugging Face `tokenizers`, built from llama.cpp's ggml-vocab-*.gguf vocab and merges (read with
     gguf-py) with the pre-tokenizer of the original models' tokenizer.json (hf_pre_tokenizers.py):
     the hostile corpus, the .inp texts, a big corpus and seeded random strings of tricky characters.
     (The .inp/.out vectors themselves run in test_tokenizer.py.)
  2. llama.cpp (llama-cpp-python, vocab_only) for decoding added tokens that are not ASCII, which HF's
     ByteLevel decoder maps back through the byte alphabet (DeepSeek's "ö" becomes U+FFFD there) while
     llama.cpp, and we, give their text; and for Gemma 4's add-BOS override.
  3. A BLOOM-style tokenizer.json trained with HF `tokenizers` (BLOOM's split regex + byte-level), saved
     beside a tiny BLOOM model by transformers and converted to GGUF by llama.cpp's converter.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import need, require_module
from hf_pre_tokenizers import PRE_TOKENIZERS, hf_pre_tokenizer
from test_tokenizer import CORPUS, big_corpus, read_vectors, read_vocab, write_vocab
from tiny_models import convert_to_gguf, save_hf_model

core = pytest.importorskip("wrenlm")._core

BYTE_LEVEL_VOCABS = ["deepseek-llm", "deepseek-coder", "qwen35"]

# Characters that tell the pre-tokenizers apart: Unicode whitespace (U+3000 is also inside DeepSeek's
# classes), marks, letters whose NFC form differs (Kelvin sign, U+1FD3), CJK and fullwidth forms,
# numbers of other scripts, BLOOM's split characters, emoji with modifiers, control characters.
TRICKY = [" ", "  ", "\t", "\n", "\r", "\r\n", "\u3000", "\u2003", "\u0085", "\u00a0", "a", "Z", "é", "\u0301",
          "\u212a", "\u1fd3", "ß", "ö", "1", "42", "٣", "½", "Ⅻ", "中", "文字", "。", "，", "、", "가", "ア", "!",
          "...", "$", "+", "'s", "'LL", "—", "“", "😀", "🏽", "\u0900", "\u093f", "ก", "\u0e31", "(", "|", ")",
          "…", "।", "،", "۔", "\x1c", "\x00", "~", "ｚ", "！", "▁", "<0x41>"]


def random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 25))) for _ in range(n)]


def vocab_file(llama_vocab_dir: Path, name: str) -> Path:
    path = llama_vocab_dir / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        need(f"ggml-vocab-{name}.gguf", f"not in {llama_vocab_dir}")
    return path


def texts_for(path: Path) -> list[str]:
    cases = read_vectors(Path(f"{path}.inp"), Path(f"{path}.out"))
    return [*CORPUS.values(), *(text for text, _ in cases), big_corpus()]


def add_vocab_tokens(hf, tokens, types):
    """Control tokens (type 3) as special added tokens, user-defined ones (type 4) as plain added tokens:
    what the original tokenizer.json's added_tokens are."""
    tk = require_module("tokenizers")
    hf.add_tokens([tk.AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    hf.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])


@pytest.fixture(scope="module", params=BYTE_LEVEL_VOCABS)
def byte_level_family(request, llama_vocab_dir):
    """(name, ours, HF tokenizers, llama.cpp, tokens, types, path) for one byte-level vocabulary."""
    tk = require_module("tokenizers")
    llama_cpp = require_module("llama_cpp")
    name = request.param
    path = vocab_file(llama_vocab_dir, name)
    tokens, types, merges = read_vocab(path)
    hf = tk.Tokenizer(tk.models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                                    merges=[tuple(m.split(" ", 1)) for m in merges]))
    hf.pre_tokenizer = hf_pre_tokenizer(PRE_TOKENIZERS[name])
    hf.decoder = tk.decoders.ByteLevel()
    add_vocab_tokens(hf, tokens, types)
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return name, core.Tokenizer(str(path)), hf, llama, tokens, types, path


def test_byte_level_family_matches_hf(byte_level_family):
    name, t, hf, llama, tokens, types, path = byte_level_family
    assert t.pre == name
    for text in texts_for(path):
        ids = t.encode(text, add_bos=False, parse_special=True)
        assert ids == hf.encode(text, add_special_tokens=False).ids, (name, text)
        assert t.decode(ids, skip_special=True) == t.decode([i for i in ids if types[i] != 3])
        if any(types[i] == 4 and not tokens[i].isascii() for i in ids):
            # HF byte-decodes added tokens ("ö" -> 0xF6 -> U+FFFD); llama.cpp gives their text.
            assert b"".join(t.token_bytes(i) for i in ids) == llama.detokenize(ids, special=True), (name, text)
        else:
            assert t.decode(ids) == hf.decode(ids, skip_special_tokens=False), (name, text)


def test_byte_level_family_random_text_matches_hf(byte_level_family):
    name, t, hf, *_ = byte_level_family
    for text in random_texts(1, 3000):
        assert t.encode(text, add_bos=False) == hf.encode(text, add_special_tokens=False).ids, (name, text)


def test_deepseek_user_defined_token_decodes_to_its_text(llama_vocab_dir):
    t = core.Tokenizer(str(vocab_file(llama_vocab_dir, "deepseek-coder")))
    ids = t.encode("naïve ö", add_bos=False)
    assert t.token_type(ids[-1]) == 4 and t.token_text(ids[-1]) == "ö"
    assert t.decode(ids) == "naïve ö"


# ---------------------------------------------------------------- Gemma 4


@pytest.fixture(scope="module")
def gemma4(llama_vocab_dir):
    """Ours and HF tokenizers for Gemma 4's vocabulary: BPE with byte fallback over the text with spaces
    written as U+2581 (Replace normalizer), no pre-tokenizer, SentencePiece-style decoder."""
    tk = require_module("tokenizers")
    path = vocab_file(llama_vocab_dir, "gemma-4")
    tokens, types, merges = read_vocab(path)
    pairs = []
    for m in merges:  # a merge part may start with a space-like character; split at the first inner space
        k = m.find(" ", 1)
        pairs.append((m[:k], m[k + 1:]))
    hf = tk.Tokenizer(tk.models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs, byte_fallback=True,
                                    unk_token="<unk>"))
    hf.normalizer = tk.normalizers.Replace(" ", "\u2581")
    d = tk.decoders
    hf.decoder = d.Sequence([d.Replace("\u2581", " "), d.ByteFallback(), d.Fuse()])
    add_vocab_tokens(hf, tokens, types)
    return core.Tokenizer(str(path)), hf, path


def test_gemma4_matches_hf(gemma4):
    t, hf, path = gemma4
    assert t.model == "gemma4" and t.pre == "gemma4" and t.add_bos
    texts = texts_for(path) + random_texts(2, 2000)
    texts += ["\n" * k for k in range(1, 40)] + ["a" + "\n" * k + " b" for k in range(1, 40)]
    for text in texts:
        ids = t.encode(text, add_bos=False, parse_special=True)
        assert ids == hf.encode(text, add_special_tokens=False).ids, text
        assert t.decode(ids) == hf.decode(ids, skip_special_tokens=False), text
        assert t.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True), text


def test_gemma4_byte_fallback(gemma4):
    t, _, _ = gemma4
    ids = t.encode("\U0001fae8", add_bos=False)  # a character with no token of its own
    assert [t.token_text(i) for i in ids] == ["<0xF0>", "<0x9F>", "<0xAB>", "<0xA8>"]
    assert t.decode(ids) == "\U0001fae8"


def test_gemma4_adds_bos_whatever_the_file_says(tmp_path):
    """llama.cpp overrides tokenizer.ggml.add_bos_token=false for Gemma 4; so do we."""
    gguf = require_module("gguf")
    llama_cpp = require_module("llama_cpp")
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "\n", "\n\n"]
    types = [3, 3, 3, 2] + [6] * 256 + [1] * 8
    path = tmp_path / "gemma4-tiny.gguf"
    w = gguf.GGUFWriter(str(path), arch="gemma4")
    w.add_tokenizer_model("gemma4")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_merges(["\u2581 a", "a b", "\u2581a b"])
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    t = core.Tokenizer(str(path))
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    assert t.add_bos
    for text in ["ab ab", " a\n\nb", "c é\n\n\n", ""]:
        assert t.encode(text) == llama.tokenize(text.encode(), add_bos=True, special=True), text
        assert t.encode(text)[:1] == [2]


# ---------------------------------------------------------------- BLOOM


BLOOM_TRAINING = [*CORPUS.values(), "Hyvää päivää! Mitä kuuluu? Kiitos, hyvin.", "नमस्ते। आप कैसे हैं?",
                  "مرحبا، كيف حالك؟ شكراً۔", "你好。我很好，谢谢、再见…", "(a|b) ... !? 1,000.50"] * 5


@pytest.fixture(scope="module")
def bloom_folder(tmp_path_factory):
    """A tiny BLOOM model folder whose tokenizer.json is BLOOM's kind: BPE trained with BLOOM's split
    regex followed by byte-level (no regex), ByteLevel decoder; <unk> <s> </s> <pad> first."""
    tk = require_module("tokenizers")
    transformers = require_module("transformers")
    t = tk.Tokenizer(tk.models.BPE())
    t.pre_tokenizer = hf_pre_tokenizer(PRE_TOKENIZERS["bloom"])
    t.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t.train_from_iterator(BLOOM_TRAINING, trainer)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>",
                                               eos_token="</s>", pad_token="<pad>")
    cfg = transformers.BloomConfig(vocab_size=len(tok), hidden_size=32, n_layer=1, n_head=2,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=3)
    return save_hf_model(tmp_path_factory.mktemp("bloom") / "hf", cfg, transformers.BloomForCausalLM, tok)


def bloom_texts() -> list[str]:
    return [*CORPUS.values(), *BLOOM_TRAINING[:6], *random_texts(3, 1000)]


def test_bloom_tokenizer_json_matches_hf(bloom_folder):
    tk = require_module("tokenizers")
    ref = tk.Tokenizer.from_file(str(bloom_folder / "tokenizer.json"))
    assert core.open_source(str(bloom_folder)).metadata["tokenizer.ggml.pre"] == "bloom"
    t = core.Tokenizer(str(bloom_folder))
    for text in bloom_texts():
        ids = t.encode(text)
        assert ids == ref.encode(text).ids, text
        assert t.decode(ids) == ref.decode(ids, skip_special_tokens=False), text


def test_bloom_gguf_from_converter_matches_hf(bloom_folder, tmp_path):
    """llama.cpp's converter writes the vocabulary (pre-tokenizer named "bloom", as it does for BLOOM's
    own tokenizer, which it recognises by hash); the GGUF tokenizes as HF does. "poro-chat" and
    "gpt3-finnish" are llama.cpp's other names for the same split."""
    tk = require_module("tokenizers")
    ref = tk.Tokenizer.from_file(str(bloom_folder / "tokenizer.json"))
    path = convert_to_gguf(bloom_folder, tmp_path / "bloom.gguf", bpe_pre="bloom")
    tokens, types, merges = read_vocab(path)
    for pre in ("bloom", "poro-chat", "gpt3-finnish"):
        if pre != "bloom":
            path = write_vocab(tmp_path / f"{pre}.gguf", pre=pre, tokens=tokens, types=types, merges=merges)
        t = core.Tokenizer(str(path))
        assert t.pre == pre
        for text in bloom_texts():
            assert t.encode(text, add_bos=False) == ref.encode(text, add_special_tokens=False).ids, (pre, text)
