"""Tokenizer tests against independent oracles. Tokenization is discrete: every comparison is exact.

Oracles:
  1. Hugging Face `tokenizers`, built from the GGUF's own vocab and merges (read with gguf-py).
  2. llama.cpp's tokenizer through llama-cpp-python (vocab_only).
  3. llama.cpp's ggml-vocab-*.gguf + .inp/.out test vectors.
  4. Python's own UTF-8 decoder (bytes.decode(errors="replace")) for the incremental detokenizer.
  5. Hand-made GGUF files (gguf-py's GGUFWriter) for the error paths.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import need, require_module

core = pytest.importorskip("wrenlm")._core

CORPUS = {
    "english": "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst "
    "of times; it was the age of wisdom.",
    "korean": "안녕하세요, world! 한국어 토크나이저 테스트입니다.",
    "chinese": "我爱自然语言处理。今天天气很好！你吃饭了吗？",
    "japanese": "こんにちは世界、カタカナとひらがな。",
    "arabic": "مرحبا بالعالم! كيف حالك؟ ١٢٣",
    "devanagari_thai": "नमस्ते दुनिया สวัสดีชาวโลก",
    "emoji": "👋🏽 👨‍👩‍👧‍👦 🏳️‍🌈 👍🏿 ❤️‍🔥 🇰🇷 😀😃😄 🧑🏻‍💻",
    "code": "def f(x):\n    if x > 0:\n\treturn x ** 2  # square\n    else:\n        return -x\n\n"
    "class A:\n    pass\n",
    "whitespace_runs": "a    b\t\t\tc   \n\n\n   d     e\u00a0\u00a0f\u3000g\u2003h \x85 i      ",
    "leading_trailing": "   leading and trailing   ",
    "newline_runs": "\n\n\n\nx\r\n\r\ny\n \n  \n",
    "digits": "1234567890 3.14159 0.5 1,000,000 ٣٤٥ ½ Ⅻ 2024-01-01 v1.2.3",
    "punctuation": "Hello!!! What?? (yes) [no] {maybe} ... --- @#$%^&*_+=~`|\\/<>;:'\"",
    "contractions": "don't I'LL we've they're it's I'm she'd you'll 'tis DON'T We'Re",
    "special_text": "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "near_special": "<|im_start| <|im_start|><|im_end|> <<|im_end|>> <|endoftext|><|endoftext|> <|im_",
    "empty": "",
    "control_chars": "\x00\x01\x07\x1b[31mred\x1b[0m\x7f\x1c\x1d\x1e\x1f\u200b\u200d\ufeff\u0378\ue000",
    "latin": "Ünïcödé façade naïve café — “quotes” ‘single’ … ß Æ œ",
    "math": "∑ x² ≤ ∞ ∂f/∂x α+β=γ",
    "long_word": "a" * 300 + " " + "supercalifragilistic" * 20,
    "url": "https://example.com/path?q=1&x=2 user@example.com",
    "single_space": " ",
    "single_newline": "\n",
}
IDS = list(CORPUS)


def big_corpus() -> str:
    text = "\n".join(CORPUS.values())
    return (text + "\n") * (20_000 // len(text.encode()) + 1)


def byte_level_alphabet() -> list[str]:
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tok(smollm2_path):
    return core.Tokenizer(smollm2_path)


def read_vocab(path):
    """tokens, token types, merges and scalar ids of a GGUF file, read with gguf-py."""
    gguf = require_module("gguf")
    r = gguf.GGUFReader(str(path))

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    return strings("tokenizer.ggml.tokens"), types, strings("tokenizer.ggml.merges")


def hf_tokenizer(tokens, types, merges, *, with_specials=True):
    """An HF tokenizer equal to llama.cpp's "smollm" pipeline, built only from the vocab data."""
    tk = require_module("tokenizers")
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = tk.models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
    hf = tk.Tokenizer(bpe)
    hf.pre_tokenizer = tk.pre_tokenizers.Sequence(
        [
            tk.pre_tokenizers.Digits(individual_digits=True),
            tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    hf.decoder = tk.decoders.ByteLevel()
    if with_specials:
        specials = [t for t, ty in zip(tokens, types) if ty == 3]
        hf.add_special_tokens([tk.AddedToken(t, special=True, normalized=False) for t in specials])
    return hf


@pytest.fixture(scope="module")
def smollm2_vocab(smollm2_path):
    return read_vocab(smollm2_path)


@pytest.fixture(scope="module")
def hf(smollm2_vocab):
    return hf_tokenizer(*smollm2_vocab)


@pytest.fixture(scope="module")
def hf_plain(smollm2_vocab):
    return hf_tokenizer(*smollm2_vocab, with_specials=False)


@pytest.fixture(scope="module")
def llama(smollm2_path):
    llama_cpp = require_module("llama_cpp")
    return llama_cpp.Llama(model_path=smollm2_path, vocab_only=True, verbose=False)


# ---------------------------------------------------------------- basics


def test_metadata(tok, smollm2_vocab):
    tokens, types, _ = smollm2_vocab
    assert tok.n_vocab == len(tokens) == 49152
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert tok.add_bos is False
    assert tok.pre == "smollm"
    assert tok.token_id("<|im_start|>") == 1
    assert tok.token_id("<|im_end|>") == 2
    assert tok.token_id("no such token ☃☃") == -1
    assert tok.is_eog(2) and tok.is_eog(0)  # <|im_end|> (eos), <|endoftext|>
    assert not tok.is_eog(1) and not tok.is_eog(tok.token_id("Hello"))
    assert tok.is_control(1) and not tok.is_control(tok.token_id("Hello"))
    for i in (0, 1, 100, 4000, 49151):
        assert tok.token_type(i) == types[i]
        assert tok.token_text(i) == tokens[i]
    # add_bos_token is false in this file, so BOS is never added.
    assert tok.encode("Hi", add_bos=True) == tok.encode("Hi", add_bos=False)


def representable(tok, text: str) -> str:
    """text less the bytes the vocabulary has no token for (SmolLM2 lacks a few control bytes,
    e.g. 0x1D; llama.cpp and HF tokenizers drop them, and so do we)."""
    alphabet = byte_level_alphabet()
    missing = {b for b in range(256) if tok.token_id(alphabet[b]) < 0}
    return bytes(b for b in text.encode() if b not in missing).decode()


@pytest.mark.parametrize("name", IDS)
def test_round_trip(tok, name):
    text = CORPUS[name]
    expected = representable(tok, text)
    assert (expected != text) == (name == "control_chars")
    assert tok.decode(tok.encode(text)) == expected
    assert tok.decode(tok.encode(text, parse_special=False)) == expected


# ---------------------------------------------------------------- oracle 1: HF tokenizers


@pytest.mark.parametrize("name", IDS)
def test_matches_hf_tokenizers(tok, hf, name):
    text = CORPUS[name]
    ids = tok.encode(text, add_bos=False, parse_special=True)
    assert ids == hf.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert tok.decode(ids, skip_special=True) == hf.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("name", IDS)
def test_parse_special_false_matches_hf_without_added_tokens(tok, hf_plain, name):
    text = CORPUS[name]
    assert tok.encode(text, add_bos=False, parse_special=False) == hf_plain.encode(text).ids


def test_special_tokens_are_parsed(tok):
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    plain = tok.encode("<|im_start|>user\nHi<|im_end|>", parse_special=False)
    assert 1 not in plain and 2 not in plain
    assert tok.decode(ids, skip_special=True) == "user\nHi"


def test_big_corpus_matches_hf_and_is_fast(tok, hf):
    text = big_corpus()
    assert len(text.encode()) >= 20_000
    expected = hf.encode(text, add_special_tokens=False).ids
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        ids = tok.encode(text)
        best = min(best, time.perf_counter() - t0)
    assert ids == expected
    assert tok.decode(ids) == representable(tok, text)
    print(f"\nencode {len(text.encode())} bytes -> {len(ids)} tokens: {best * 1e3:.2f} ms")
    assert best < 0.1, f"encoding 20 KB took {best * 1e3:.1f} ms; expected a few ms"


# ---------------------------------------------------------------- oracle 2: llama.cpp


@pytest.mark.parametrize("name", IDS)
def test_matches_llama_cpp(tok, llama, name):
    text = CORPUS[name]
    ids = tok.encode(text, add_bos=False, parse_special=True)
    assert ids == llama.tokenize(text.encode(), add_bos=False, special=True)
    assert tok.encode(text, add_bos=False, parse_special=False) == llama.tokenize(
        text.encode(), add_bos=False, special=False
    )
    if ids:
        assert b"".join(tok.token_bytes(i) for i in ids) == llama.detokenize(ids, special=True)


def test_big_corpus_matches_llama_cpp(tok, llama):
    text = big_corpus()
    assert tok.encode(text) == llama.tokenize(text.encode(), add_bos=False, special=True)


# ---------------------------------------------------------------- oracle 3: llama.cpp vocab vectors

VOCAB_FILES = ["starcoder", "gpt-2", "refact", "command-r", "falcon", "mpt", "llama-bpe", "qwen2", "qwen35",
               "deepseek-llm", "deepseek-coder", "llama-spm", "phi-3", "gemma-4", "bert-bge"]
# Vector files whose tokenizer is not implemented, with the reason (checked below, so a new vocab
# file in llama.cpp's folder cannot go untested silently). None at present.
UNTESTED_VOCAB_FILES: dict[str, str] = {}


def read_vectors(inp: Path, out: Path):
    """llama.cpp's format: inputs separated by "\\n__ggml_vocab_test__\\n", one id line each."""
    raw = inp.read_bytes().decode("utf-8")
    sep = "\n__ggml_vocab_test__\n"
    texts = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt < 0:
            texts.append(raw[pos:])
            break
        texts.append(raw[pos:nxt])
        pos = nxt + len(sep)
    lines = out.read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(texts) == len(lines), f"{inp.name}: {len(texts)} inputs but {len(lines)} outputs"
    return [(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]


@pytest.mark.parametrize("name", VOCAB_FILES)
def test_llama_cpp_vocab_vectors(llama_vocab_dir, name):
    path = llama_vocab_dir / f"ggml-vocab-{name}.gguf"
    inp, out = Path(f"{path}.inp"), Path(f"{path}.out")
    if not (path.is_file() and inp.is_file() and out.is_file()):
        need(f"ggml-vocab-{name}", f"not in {llama_vocab_dir}")
    t = core.Tokenizer(str(path))
    cases = read_vectors(inp, out)
    # llama.cpp's test-tokenizer-0 encodes with add_special=false, parse_special=false.
    failures = [(text, ids, t.encode(text, add_bos=False, parse_special=False)) for text, ids in cases]
    failures = [f for f in failures if f[1] != f[2]]
    print(f"\n{name}: {len(cases) - len(failures)}/{len(cases)} vectors pass")
    assert not failures, f"{len(failures)}/{len(cases)} fail, first: {failures[0]!r}"
    assert len(cases) > 30


@pytest.mark.parametrize("name", ["aquila", "gpt-neox"])
def test_vocab_without_vectors_matches_llama_cpp(llama_vocab_dir, name):
    """Byte-level vocab files that come without .inp/.out: llama.cpp itself is the oracle."""
    llama_cpp = require_module("llama_cpp")
    path = llama_vocab_dir / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        need(f"ggml-vocab-{name}", f"not in {llama_vocab_dir}")
    t = core.Tokenizer(str(path))
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    for text in [*CORPUS.values(), "a</s>b <|endoftext|>c"]:
        for special in (True, False):
            assert t.encode(text, parse_special=special) == llama.tokenize(
                text.encode(), add_bos=True, special=special), (text, special)


def test_every_vector_file_is_accounted_for(llama_vocab_dir):
    names = sorted(p.name[len("ggml-vocab-"):-len(".gguf.inp")] for p in llama_vocab_dir.glob("ggml-vocab-*.gguf.inp"))
    assert names, f"no .inp files in {llama_vocab_dir}"
    missing = [n for n in names if n not in VOCAB_FILES and n not in UNTESTED_VOCAB_FILES]
    assert not missing, f"vector files neither tested nor listed as unsupported: {missing}"
    for name in UNTESTED_VOCAB_FILES:  # they really are unsupported
        with pytest.raises(core.UnsupportedError):
            core.Tokenizer(str(llama_vocab_dir / f"ggml-vocab-{name}.gguf"))


# ---------------------------------------------------------------- oracle 4: incremental detokenizer

STREAM_TEXTS = [CORPUS["korean"], CORPUS["emoji"], CORPUS["chinese"], CORPUS["devanagari_thai"]]


@pytest.mark.parametrize("text", STREAM_TEXTS, ids=["korean", "emoji", "chinese", "indic_thai"])
def test_detokenizer_streams_whole_characters(tok, text):
    ids = tok.encode(text)
    # The test is only meaningful if some token ends inside a character.
    assert any(_is_broken(tok.token_bytes(i)) for i in ids)
    d = core.Detokenizer(tok)
    pieces = [d.push(i) for i in ids]
    pieces.append(d.flush())
    for p in pieces:
        p.encode("utf-8")  # no lone surrogates
        assert "\ufffd" not in p
    assert "".join(pieces) == tok.decode(ids) == text
    assert sum(1 for p in pieces if p) > 1  # it did stream


def _is_broken(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def test_detokenizer_skips_control_tokens(tok):
    ids = tok.encode("<|im_start|>assistant\n안녕<|im_end|>")
    d = core.Detokenizer(tok)
    assert "".join(d.push(i) for i in ids) + d.flush() == "assistant\n안녕"
    d = core.Detokenizer(tok, skip_special=False)
    assert "".join(d.push(i) for i in ids) + d.flush() == "<|im_start|>assistant\n안녕<|im_end|>"


def test_detokenizer_ill_formed_bytes_match_python(tok):
    # Random byte-level tokens make arbitrary, often ill-formed byte streams: the streamed text must
    # equal Python's replacement decoding of the joined bytes, piece boundaries notwithstanding.
    rng = random.Random(1)
    byte_tokens = [i for i in range(tok.n_vocab) if not tok.is_control(i) and len(tok.token_bytes(i)) <= 2]
    multi = [i for i in range(tok.n_vocab) if _is_broken(tok.token_bytes(i))]
    assert multi
    for _ in range(200):
        ids = [rng.choice(byte_tokens if rng.random() < 0.5 else multi) for _ in range(rng.randint(1, 12))]
        d = core.Detokenizer(tok)
        streamed = "".join(d.push(i) for i in ids) + d.flush()
        raw = b"".join(tok.token_bytes(i) for i in ids)
        assert streamed == raw.decode("utf-8", errors="replace") == tok.decode(ids)


def test_detokenizer_holds_incomplete_tail_and_resets(tok):
    first_byte = tok.token_id("ì")  # byte-level char for 0xEC, the first byte of many Hangul
    assert first_byte >= 0 and tok.token_bytes(first_byte) == b"\xec"
    d = core.Detokenizer(tok)
    assert d.push(first_byte) == ""
    assert d.flush() == "\ufffd"
    assert d.flush() == ""
    assert d.push(first_byte) == ""
    d.reset()
    assert d.push(tok.token_id("A")) == "A"


# ---------------------------------------------------------------- oracle 5: bad input


def test_decode_out_of_range_ids(tok):
    for bad in (tok.n_vocab, -1, 10**12):
        with pytest.raises(ValueError, match=str(bad)):
            tok.decode([1, bad])
        with pytest.raises(ValueError):
            tok.token_bytes(bad)
        with pytest.raises(ValueError):
            core.Detokenizer(tok).push(bad)
    with pytest.raises(ValueError, match="49152"):
        tok.decode([49152])


TINY_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2"]


def write_vocab(path, *, model="gpt2", pre="gpt-2", tokens=None, types=None, merges=None,
                bos=None, add_bos=None, omit=()):
    """A vocabulary-only GGUF: 256 byte-level characters, merge results, two control tokens."""
    gguf = require_module("gguf")
    if tokens is None:
        merged = ["Ġt", "he", "Ġthe", "in", "Ġa", "12"]
        tokens = ["<|endoftext|>", "<|im_start|>"] + byte_level_alphabet() + merged
    if types is None:
        types = [3, 3] + [1] * (len(tokens) - 2)
    if merges is None:
        merges = TINY_MERGES
    w = gguf.GGUFWriter(str(path), arch="llama")
    if "model" not in omit:
        w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    if "tokens" not in omit:
        w.add_token_list(tokens)
    if "types" not in omit:
        w.add_token_types(types)
    if "merges" not in omit:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_tiny_vocab_matches_hf(tmp_path):
    """A vocabulary made on the fly, pre "gpt-2" (no digit split), against HF with the same data."""
    tk = require_module("tokenizers")
    path = write_vocab(tmp_path / "tiny.gguf")
    t = core.Tokenizer(path)
    tokens, types, merges = read_vocab(path)
    hf = tk.Tokenizer(tk.models.BPE(vocab={s: i for i, s in enumerate(tokens)},
                                    merges=[tuple(m.split(" ", 1)) for m in merges]))
    hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.add_special_tokens([tk.AddedToken(s, special=True, normalized=False) for s in tokens[:2]])
    for text in ["the theme in a 12123 thin", "<|im_start|>the<|endoftext|>", "", " ünï 안녕 👍🏽"]:
        ids = t.encode(text)
        assert ids == hf.encode(text, add_special_tokens=False).ids
        assert t.decode(ids) == text
    assert t.encode(" the")[-1] == tokens.index("Ġthe")
    assert t.encode("12") == [tokens.index("12")]  # digits not split under "gpt-2"


def test_user_defined_tokens_match_hf(tmp_path):
    """User-defined tokens (type 4) are cut out even with parse_special=False; control ones are not."""
    tk = require_module("tokenizers")
    merged = ["Ġt", "he", "Ġthe", "in", "Ġa", "12"]
    base = ["<|endoftext|>", "<|im_start|>"] + byte_level_alphabet() + merged
    tokens = base + ["<tool>", "<tool_call>"]
    types = [3, 3] + [1] * (len(base) - 2) + [4, 4]
    t = core.Tokenizer(write_vocab(tmp_path / "user.gguf", tokens=tokens, types=types))
    hf = tk.Tokenizer(tk.models.BPE(vocab={s: i for i, s in enumerate(tokens)},
                                    merges=[tuple(m.split(" ", 1)) for m in TINY_MERGES]))
    hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.add_tokens([tk.AddedToken(s, special=False, normalized=False) for s in tokens[-2:]])
    text = "the <tool_call>in<tool> a<|im_start|>the<tool_"
    # With only the user-defined tokens added, HF is the oracle for parse_special=False.
    assert t.encode(text, parse_special=False) == hf.encode(text, add_special_tokens=False).ids
    assert tokens.index("<tool_call>") in t.encode(text, parse_special=False)
    assert 1 not in t.encode(text, parse_special=False)
    hf.add_special_tokens([tk.AddedToken(s, special=True, normalized=False) for s in tokens[:2]])
    ids = t.encode(text, parse_special=True)
    assert ids == hf.encode(text, add_special_tokens=False).ids and 1 in ids
    assert t.decode(ids) == text
    assert t.decode(ids, skip_special=True) == text.replace("<|im_start|>", "")


def test_add_bos_follows_metadata(tmp_path):
    t = core.Tokenizer(write_vocab(tmp_path / "bos.gguf", bos=1, add_bos=True))
    assert t.add_bos and t.bos_id == 1
    assert t.encode("he", add_bos=True) == [1, t.token_id("he")]
    assert t.encode("he", add_bos=False) == [t.token_id("he")]
    t = core.Tokenizer(write_vocab(tmp_path / "nobos.gguf", bos=1, add_bos=False))
    assert t.encode("he", add_bos=True) == [t.token_id("he")]


def test_missing_tokens_array(tmp_path):
    with pytest.raises(core.FormatError, match="tokenizer.ggml.tokens") as e:
        core.Tokenizer(write_vocab(tmp_path / "a.gguf", omit=("tokens", "types")))
    assert "a.gguf" in str(e.value)


def test_mismatched_token_type_length(tmp_path):
    tokens = ["<|endoftext|>", "<|im_start|>"] + byte_level_alphabet()
    with pytest.raises(core.FormatError, match="tokenizer.ggml.token_type") as e:
        path = write_vocab(tmp_path / "b.gguf", tokens=tokens, types=[1] * (len(tokens) - 3), merges=[])
        core.Tokenizer(path)
    assert "b.gguf" in str(e.value) and str(len(tokens)) in str(e.value)


def test_unknown_pre_tokenizer(tmp_path):
    with pytest.raises(core.UnsupportedError, match="made-up-pre") as e:
        core.Tokenizer(write_vocab(tmp_path / "c.gguf", pre="made-up-pre"))
    msg = str(e.value)
    assert "tokenizer.ggml.pre" in msg and "smollm" in msg and "gpt-2" in msg and "c.gguf" in msg


def test_unsupported_tokenizer_model(tmp_path):
    with pytest.raises(core.UnsupportedError, match="'made-up-model'") as e:
        core.Tokenizer(write_vocab(tmp_path / "d.gguf", model="made-up-model"))
    msg = str(e.value)
    assert "tokenizer.ggml.model" in msg and "d.gguf" in msg
    assert all(m in msg for m in ("gpt2", "llama", "bert", "t5"))


def test_missing_model_key(tmp_path):
    with pytest.raises(core.FormatError, match="tokenizer.ggml.model"):
        core.Tokenizer(write_vocab(tmp_path / "e.gguf", omit=("model",)))


def test_bad_merge_entry(tmp_path):
    with pytest.raises(core.FormatError, match="tokenizer.ggml.merges.*entry 1"):
        core.Tokenizer(write_vocab(tmp_path / "f.gguf", merges=["Ġ t", "he"]))


def test_bad_token_type_value(tmp_path):
    tokens = ["<|endoftext|>", "<|im_start|>"] + byte_level_alphabet()
    types = [3, 3] + [1] * 255 + [9]
    with pytest.raises(core.FormatError, match="tokenizer.ggml.token_type.*9"):
        core.Tokenizer(write_vocab(tmp_path / "g.gguf", tokens=tokens, types=types, merges=[]))


def test_bos_out_of_range(tmp_path):
    with pytest.raises(core.FormatError, match="tokenizer.ggml.bos_token_id.*100000"):
        core.Tokenizer(write_vocab(tmp_path / "h.gguf", bos=100000))


def test_missing_pre_uses_llama_cpp_default(tmp_path):
    # llama.cpp runs its "default" stages when the key is absent; digits are not split one by one.
    t = core.Tokenizer(write_vocab(tmp_path / "i.gguf", pre=None))
    assert t.pre == "default"
    assert t.encode("12") == [t.token_id("12")]


# ---------------------------------------------------------------- the Python wrapper


def test_python_wrapper(smollm2_path, tok):
    wt = pytest.importorskip("wrenlm.tokenizer")
    t = wt.Tokenizer(Path(smollm2_path))
    text = CORPUS["special_text"] + CORPUS["emoji"]
    assert t.encode(text) == tok.encode(text)
    assert t.decode(iter(t.encode(text))) == text
    assert "".join(t.stream(t.encode(text), skip_special=False)) == text
    assert "".join(t.stream(t.encode(text))) == tok.decode(tok.encode(text), skip_special=True)
    assert (t.bos_id, t.eos_id, len(t), t.add_bos) == (1, 2, 49152, False)
    assert t.token_id("<|im_end|>") == 2 and t.token_id("no such token ☃☃") is None
    assert t.is_eog(2) and t.is_control(1)
    assert "smollm" in repr(t)
