"""Unigram (tokenizer.ggml.model == "t5") against independent oracles, on llama.cpp's
ggml-vocab-nomic-bert-moe.gguf (XLM-R's 250k-piece vocabulary with its precompiled nmt_nfkc
charsmap, add_space_prefix and remove_extra_whitespaces). llama.cpp ships no .inp/.out vectors
for it. Every comparison is exact.

Oracles:
  1. The sentencepiece library, loading a model made from the GGUF's pieces, scores, types and
     charsmap (see test_tokenizer_spm.sentencepiece_processor).
  2. llama.cpp through llama-cpp-python (vocab_only), special tokens and BOS/EOS included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import assert_megabyte_encodes_fast, need, require_module
from test_tokenizer import CORPUS
from test_tokenizer_spm import sentencepiece_processor

core = pytest.importorskip("wrenlm")._core

UNIGRAM_CORPUS = {
    **CORPUS,
    "special": "<s>Hello</s> <mask> x<pad>  y  <unk>",
    "nfkc": "ｈｅｌｌｏ　ｗｏｒｌｄ ① ﬁ Ⅻ ㍿ ｶﾀｶﾅ \u00a0\t\n x ＡＢＣ",
    "spaces": "   a   b\t\tc\n\n d   ",
}
IDS = list(UNIGRAM_CORPUS)


@pytest.fixture(scope="module")
def nomic_path(llama_vocab_dir: Path) -> str:
    path = llama_vocab_dir / "ggml-vocab-nomic-bert-moe.gguf"
    if not path.is_file():
        need("ggml-vocab-nomic-bert-moe.gguf", f"not in {llama_vocab_dir}")
    return str(path)


@pytest.fixture(scope="module")
def tok(nomic_path):
    return core.Tokenizer(nomic_path)


@pytest.fixture(scope="module")
def sp(nomic_path):
    return sentencepiece_processor(nomic_path, unigram=True, unk=3, bos=0, eos=2, pad=1,
                                   add_dummy_prefix=True, remove_extra_whitespaces=True)


@pytest.fixture(scope="module")
def llama(nomic_path):
    llama_cpp = require_module("llama_cpp")
    return llama_cpp.Llama(model_path=nomic_path, vocab_only=True, verbose=False)


def test_metadata(tok):
    assert (tok.model, tok.n_vocab) == ("t5", 250048)
    assert (tok.bos_id, tok.eos_id, tok.add_bos) == (0, 2, True)
    assert tok.encode("hi") == [0, tok.token_id("\u2581hi"), 2]  # <s> ... </s> (add_eos_token)
    assert tok.encode("hi", add_bos=False) == [tok.token_id("\u2581hi")]


@pytest.mark.parametrize("name", IDS)
def test_matches_sentencepiece(tok, sp, name):
    text = UNIGRAM_CORPUS[name]
    ids = tok.encode(text, add_bos=False, parse_special=False)
    assert ids == sp.encode(text)
    if 3 not in ids:  # sentencepiece writes an unknown piece as " ⁇ "; we write its text
        assert tok.decode(ids) == sp.decode(ids)


@pytest.mark.parametrize("name", IDS)
def test_matches_llama_cpp(tok, llama, name):
    text = UNIGRAM_CORPUS[name]
    for parse_special in (True, False):
        for add_bos in (True, False):
            assert tok.encode(text, add_bos=add_bos, parse_special=parse_special) == llama.tokenize(
                text.encode(), add_bos=add_bos, special=parse_special), (parse_special, add_bos)


@pytest.mark.parametrize("char", ["a", " ", "😀", "中"])
def test_long_repeated_character(tok, sp, char):
    text = char * 20_000
    t0 = time.perf_counter()
    ids = tok.encode(text, add_bos=False)
    assert time.perf_counter() - t0 < 1.0
    assert ids == sp.encode(text)


def test_one_megabyte_is_fast(tok):
    """Viterbi over character positions, the vocabulary walked as a sorted array: linear in the
    text (times the depth of the longest match)."""
    assert_megabyte_encodes_fast(tok.encode, CORPUS.values(), min_ids=1000)


def test_bad_charsmap(tmp_path):
    gguf = require_module("gguf")
    w = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), arch="t5")
    w.add_tokenizer_model("t5")
    w.add_token_list(["<pad>", "</s>", "<unk>", "\u2581a"])
    w.add_token_types([3, 3, 2, 1])
    w.add_token_scores([0.0, 0.0, 0.0, -1.0])
    w.add_array("tokenizer.ggml.precompiled_charsmap", [255, 255, 0, 0, 1, 2])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(core.FormatError, match="precompiled_charsmap") as e:
        core.Tokenizer(str(tmp_path / "bad.gguf"))
    assert "bad.gguf" in str(e.value)
