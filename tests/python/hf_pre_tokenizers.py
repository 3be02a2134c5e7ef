"""tokenizer.json pre-tokenizers of the byte-level BPE families, as the original models' files spell
them (JSON form), and HF `tokenizers` objects built from that form. Shared by the tokenizer.json tests
(test_hf_folder.py) and the tests that give a GGUF vocabulary its original pre-tokenizer in HF
`tokenizers` (test_tokenizer_families.py)."""

from __future__ import annotations

from typing import Any

from conftest import require_module

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")
QWEN35_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")
BLOOM_RE = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
# DeepSeek LLM's alphabetic scripts. The six escapes are characters that Unicode normalization would
# change (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A), so no editor can silently alter them.
DEEPSEEK_LATIN = ("A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚ"
                  "Ḁ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼ"
                  "ℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗ"
                  "Ａ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃")
DEEPSEEK_CJK_RE = "[一-龥ࠀ-一가-\ud7ff]+"


def byte_level(use_regex: bool, add_prefix_space: bool = False) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def split(regex: str, behavior: str = "Isolated") -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": behavior, "invert": False}


def seq(*steps: dict) -> dict:
    return {"type": "Sequence", "pretokenizers": list(steps)}


def digits(individual: bool) -> dict:
    return {"type": "Digits", "individual_digits": individual}


# llama.cpp's pre-tokenizer name -> the pre_tokenizer of the models' tokenizer.json.
PRE_TOKENIZERS = {
    "gpt-2": byte_level(True),
    "gpt-2 as split": seq(split(GPT2_RE), byte_level(False)),
    "llama-bpe": seq(split(LLAMA3_RE), byte_level(False)),
    "qwen2": seq(split(QWEN2_RE), byte_level(False)),
    "qwen35": seq(split(QWEN35_RE), byte_level(False)),
    "smollm": seq(digits(True), byte_level(True)),
    "bloom": seq(split(BLOOM_RE), byte_level(False)),
    "deepseek-llm": seq(split("[\r\n]"), split(f"\\s?[{DEEPSEEK_LATIN}]+"),
                        split("\\s?[!-/:-~！-／：-～‘-‟\u3000-。]+"), split("\\s+$"), split(DEEPSEEK_CJK_RE),
                        digits(False), byte_level(False)),
    "deepseek-coder": seq(split("[\r\n]"), split(r"\s?\p{L}+"), split(r"\s?\p{P}+"), split(DEEPSEEK_CJK_RE),
                          digits(True), byte_level(False)),
}


def hf_pre_tokenizer(spec: dict) -> Any:
    """The HF `tokenizers` pre-tokenizer object for a tokenizer.json pre_tokenizer (the kinds above)."""
    tk = require_module("tokenizers")
    p = tk.pre_tokenizers
    kind = spec["type"]
    if kind == "Sequence":
        return p.Sequence([hf_pre_tokenizer(s) for s in spec["pretokenizers"]])
    if kind == "Split":
        return p.Split(tk.Regex(spec["pattern"]["Regex"]), behavior=spec["behavior"].lower(), invert=spec["invert"])
    if kind == "Digits":
        return p.Digits(individual_digits=spec["individual_digits"])
    if kind == "ByteLevel":
        return p.ByteLevel(add_prefix_space=spec["add_prefix_space"], use_regex=spec["use_regex"])
    raise ValueError(f"no builder for pre-tokenizer {kind}")
