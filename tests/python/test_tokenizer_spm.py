"""SentencePiece BPE (tokenizer.ggml.model == "llama") against independent oracles; every
comparison is exact (tokenization is discrete).

Oracles:
  1. llama.cpp's tokenizer through llama-cpp-python (vocab_only) on llama.cpp's own vocab files:
     llama-spm (Llama 2), phi-3, baichuan. The .inp/.out vectors run in test_tokenizer.py.
  2. Hugging Face `tokenizers`, as transformers builds it from the same GGUF file (its vocab and
     merges recovered from the scores: an implementation independent of ours and of llama.cpp),
     with the normalizer of the original models' tokenizer.json (Prepend + Replace; transformers'
     LlamaTokenizer default, Metaspace with prepend_scheme="first", is the newer non-legacy
     behaviour that neither llama.cpp nor the vectors follow).
  3. The sentencepiece library itself, loading a model made from the GGUF's pieces, scores and
     types (the protobuf written by hand below: protobuf is not needed).
  4. Python's UTF-8 decoder for the streaming detokenizer over byte-fallback tokens.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import assert_megabyte_encodes_fast, need, require_module
from test_tokenizer import CORPUS

core = pytest.importorskip("wrenlm")._core

SPM_VOCABS = ["llama-spm", "phi-3", "baichuan"]
HF_VOCABS = ["llama-spm", "phi-3"]  # transformers reads no "baichuan" architecture from GGUF

# Special-token text of these vocabularies (CORPUS's <|im_start|> is plain text to them).
SPM_CORPUS = {
    **CORPUS,
    "spm_special": "<s>Hello</s> <s> world</s><unk>x<s>",
    "phi3_chat": "<|user|>\nHi there<|end|>\n<|assistant|> ok  <|endoftext|></s>\n<|system|>",
    "byte_fallback": "Ꙭ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🫠 \U0001fae8 \x00",
    "leading_spaces": "  two, three:   end",
}
IDS = list(SPM_CORPUS)


def vocab_path(llama_vocab_dir: Path, name: str) -> str:
    path = llama_vocab_dir / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        need(f"ggml-vocab-{name}.gguf", f"not in {llama_vocab_dir}")
    return str(path)


@pytest.fixture(scope="module", params=SPM_VOCABS)
def spm(request, llama_vocab_dir):
    return request.param, core.Tokenizer(vocab_path(llama_vocab_dir, request.param))


@pytest.fixture(scope="module")
def llama_cpp_vocabs(llama_vocab_dir):
    llama_cpp = require_module("llama_cpp")
    return {
        name: llama_cpp.Llama(model_path=vocab_path(llama_vocab_dir, name), vocab_only=True, verbose=False)
        for name in SPM_VOCABS
    }


def hf_from_gguf(llama_vocab_dir: Path, name: str):
    """transformers' tokenizer for the GGUF file, with the original tokenizer.json's shape."""
    transformers = require_module("transformers")
    tk = require_module("tokenizers")
    vocab_path(llama_vocab_dir, name)
    hf = transformers.AutoTokenizer.from_pretrained(
        str(llama_vocab_dir), gguf_file=f"ggml-vocab-{name}.gguf"
    ).backend_tokenizer
    hf.normalizer = tk.normalizers.Sequence(
        [tk.normalizers.Prepend("\u2581"), tk.normalizers.Replace(" ", "\u2581")]
    )
    hf.pre_tokenizer = None
    if name == "phi-3":
        # Phi-3's tokenizer.json gives its chat tokens and </s> rstrip=True (llama.cpp: RSTRIP).
        no_strip = {"<unk>", "<s>", "<|endoftext|>"}
        specials = [t.content for t in hf.get_added_tokens_decoder().values() if t.special] + ["</s>"]
        hf.add_special_tokens([tk.AddedToken(t, special=True, normalized=False, rstrip=True)
                               for t in specials if t not in no_strip])
    return hf


def read_gguf_vocab(path: str):
    """tokens, scores, token types and the precompiled charsmap (b"" if none) of a GGUF file, read
    with transformers' GGUF reader (gguf-py's takes minutes over a 237k-byte array)."""
    require_module("transformers")
    from transformers.integrations.gguf.reader import read_gguf_metadata

    keys = ("tokens", "scores", "token_type", "precompiled_charsmap")
    meta, _ = read_gguf_metadata(path, tuple(f"tokenizer.ggml.{k}" for k in keys))
    tokens, scores, types, charsmap = (meta.get(f"tokenizer.ggml.{k}") for k in keys)
    return (list(tokens), [float(x) for x in scores], [int(x) for x in types],
            bytes(int(x) & 0xFF for x in charsmap or []))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value) -> bytes:
    """One protobuf field: int -> varint, float -> fixed32, bytes -> length-delimited."""
    if isinstance(value, bool) or isinstance(value, int):
        return _varint(number << 3) + _varint(int(value))
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def sentencepiece_processor(path: str, *, unigram: bool, unk: int, bos: int, eos: int, pad: int,
                            add_dummy_prefix: bool = True, remove_extra_whitespaces: bool = False):
    """The sentencepiece library's processor for a GGUF vocabulary: a ModelProto (pieces with
    score and type; trainer_spec model type, special ids, byte_fallback; normalizer_spec charsmap
    and flags) serialized by hand from sentencepiece_model.proto's field numbers."""
    spm = require_module("sentencepiece")
    tokens, scores, types, charsmap = read_gguf_vocab(path)
    proto = b"".join(
        _field(1, _field(1, t.encode()) + _field(2, float(s)) + _field(3, ty))
        for t, s, ty in zip(tokens, scores, types)
    )
    trainer = (_field(3, 1 if unigram else 2) + _field(4, len(tokens)) + _field(35, 6 in types)
               + _field(40, unk) + _field(41, bos) + _field(42, eos) + _field(43, pad))
    normalizer = (_field(1, b"gguf") + _field(2, charsmap) + _field(3, add_dummy_prefix)
                  + _field(4, remove_extra_whitespaces) + _field(5, True))
    proto += _field(2, trainer) + _field(3, normalizer)
    return spm.SentencePieceProcessor(model_proto=proto)


@pytest.fixture(scope="module")
def hf_vocabs(llama_vocab_dir):
    return {name: hf_from_gguf(llama_vocab_dir, name) for name in HF_VOCABS}


# ---------------------------------------------------------------- metadata


def test_metadata(llama_vocab_dir):
    t = core.Tokenizer(vocab_path(llama_vocab_dir, "llama-spm"))
    assert (t.model, t.pre, t.n_vocab) == ("llama", "default", 32000)
    assert (t.bos_id, t.eos_id, t.add_bos) == (1, 2, True)
    assert t.token_type(0) == 2 and t.token_type(1) == 3 and t.token_type(3 + 0x41) == 6
    assert t.token_bytes(3 + 0x41) == b"A"  # <0x41>
    assert t.token_bytes(t.token_id("\u2581the")) == b" the"
    assert t.is_eog(2) and not t.is_eog(1)
    assert "model='llama'" in repr(t)


# ---------------------------------------------------------------- oracle 1: llama.cpp


@pytest.mark.parametrize("name", IDS)
def test_matches_llama_cpp(spm, llama_cpp_vocabs, name):
    vocab, t = spm
    llama = llama_cpp_vocabs[vocab]
    text = SPM_CORPUS[name]
    for parse_special in (True, False):
        for add_bos in (True, False):
            assert t.encode(text, add_bos=add_bos, parse_special=parse_special) == llama.tokenize(
                text.encode(), add_bos=add_bos, special=parse_special
            ), (parse_special, add_bos)


@pytest.mark.parametrize("name", IDS)
def test_round_trip(spm, name):
    _, t = spm
    text = SPM_CORPUS[name]
    # Byte fallback makes every text representable; decode drops the one prefix space.
    assert t.decode(t.encode(text, parse_special=False), skip_special=True) == text


# ---------------------------------------------------------------- oracle 2: HF tokenizers


@pytest.mark.parametrize("vocab", HF_VOCABS)
@pytest.mark.parametrize("name", IDS)
def test_matches_hf(llama_vocab_dir, hf_vocabs, vocab, name):
    t = core.Tokenizer(vocab_path(llama_vocab_dir, vocab))
    hf = hf_vocabs[vocab]
    text = SPM_CORPUS[name]
    ids = t.encode(text, add_bos=False, parse_special=True)
    assert ids == hf.encode(text, add_special_tokens=False).ids
    assert t.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert t.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------- oracle 3: sentencepiece


@pytest.fixture(scope="module")
def sp_llama(llama_vocab_dir):
    path = vocab_path(llama_vocab_dir, "llama-spm")
    return core.Tokenizer(path), sentencepiece_processor(path, unigram=False, unk=0, bos=1, eos=2, pad=-1)


@pytest.mark.parametrize("name", IDS)
def test_matches_sentencepiece(sp_llama, name):
    t, sp = sp_llama
    text = SPM_CORPUS[name]
    # sentencepiece knows no control-token text, so compare plain-text encoding.
    ids = t.encode(text, add_bos=False, parse_special=False)
    assert ids == sp.encode(text)
    assert t.decode(ids) == sp.decode(ids)


# ---------------------------------------------------------------- long inputs


@pytest.mark.parametrize("char", ["a", " ", "😀", "\u2581"])
def test_long_repeated_character_matches_llama_cpp(spm, llama_cpp_vocabs, char):
    vocab, t = spm
    text = char * 20_000
    assert t.encode(text) == llama_cpp_vocabs[vocab].tokenize(text.encode(), add_bos=True, special=True)


def test_one_megabyte_is_fast(llama_vocab_dir):
    """Merging runs on a priority queue, word by word where the vocabulary allows: 1 MB of one
    character or of mixed text takes about a second or less here (llama.cpp: 2.5 s for the mixed
    text on the same machine); a quadratic merge loop would take minutes."""
    t = core.Tokenizer(vocab_path(llama_vocab_dir, "llama-spm"))
    assert_megabyte_encodes_fast(t.encode, CORPUS.values(), min_ids=1000)


# ---------------------------------------------------------------- oracle 3: streaming


@pytest.mark.parametrize("name", ["byte_fallback", "emoji", "korean"])
def test_detokenizer_streams_whole_characters(llama_vocab_dir, name):
    t = core.Tokenizer(vocab_path(llama_vocab_dir, "llama-spm"))
    text = SPM_CORPUS[name]
    ids = t.encode(text, add_bos=False)
    assert any(t.token_type(i) == 6 for i in ids)  # some characters went through byte tokens
    d = core.Detokenizer(t)
    pieces = [d.push(i) for i in ids] + [d.flush()]
    for p in pieces:
        assert "\ufffd" not in p
    # The stream continues text, so it keeps the prefix space that decode drops.
    assert "".join(pieces) == " " + t.decode(ids) == " " + text


def test_byte_tokens_stream_like_python_decoder(llama_vocab_dir):
    t = core.Tokenizer(vocab_path(llama_vocab_dir, "llama-spm"))
    raw = "é😀".encode() + b"\xff\xe2\x82"
    ids = [3 + b for b in raw]  # <0xXX> tokens
    d = core.Detokenizer(t)
    streamed = "".join(d.push(i) for i in ids) + d.flush()
    assert streamed == raw.decode("utf-8", errors="replace") == t.decode(ids)


# ---------------------------------------------------------------- bad input


def write_spm_vocab(path, *, scores_len=None, model="llama"):
    """<unk> <s> </s>, 256 byte tokens, then "▁a" (score 0) and "ab" (score 1)."""
    gguf = require_module("gguf")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "ab"]
    types = [2, 3, 3] + [6] * 256 + [1, 1]
    scores = [0.0] * (len(tokens) - 1) + [1.0]
    if scores_len is not None:
        scores = scores[:scores_len]
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_bos_token_id(1)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_tiny_vocab(tmp_path):
    t = core.Tokenizer(write_spm_vocab(tmp_path / "spm.gguf"))
    a, ab = t.token_id("\u2581a"), t.token_id("ab")
    assert t.encode("a", add_bos=True) == [1, a]
    # "ab" outscores "▁a", so it merges first; "▁" has no token and falls back to its 3 bytes.
    assert t.encode("ab", add_bos=False) == [3 + 0xE2, 3 + 0x96, 3 + 0x81, ab]
    assert t.encode("<s>a</s>", add_bos=False) == [1, a, 2]
    assert t.decode(t.encode("a☃", add_bos=False)) == "a☃"  # ☃ through its byte tokens
    # A space with no token of its own goes through the bytes of U+2581 and so decodes as U+2581,
    # as in llama.cpp and HF (whose decoders turn U+2581 into a space before joining byte tokens).
    assert t.decode(t.encode("a b", add_bos=False)) == "a\u2581b"


def test_scores_length_mismatch(tmp_path):
    with pytest.raises(core.FormatError, match="tokenizer.ggml.scores.*3 entries") as e:
        core.Tokenizer(write_spm_vocab(tmp_path / "bad.gguf", scores_len=3))
    assert "bad.gguf" in str(e.value)
