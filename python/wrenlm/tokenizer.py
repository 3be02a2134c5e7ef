"""A tokenizer on its own, without loading a model's weights.

    >>> from wrenlm.tokenizer import Tokenizer
    >>> tok = Tokenizer("SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> ids = tok.encode("<|im_start|>user\\nHi<|im_end|>")
    >>> tok.decode(ids, skip_special=True)
    'user\\nHi'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from wrenlm._loader import load_core

_core = load_core()

__all__ = ["Tokenizer"]


class Tokenizer:
    """The tokenizer of a GGUF file or a Hugging Face model folder (``tokenizer.json``).

    Byte-level BPE (GPT-2, Llama 3, Qwen2, Qwen3.5, SmolLM2, DeepSeek, BLOOM, ...), SentencePiece-style
    BPE with byte fallback (Llama 2, Mistral, Phi-3, Gemma, Gemma 4), WordPiece (BERT) and Unigram
    (T5-style), giving the same ids as llama.cpp and Hugging Face ``tokenizers`` for the same
    vocabulary. No weights are used.

    Args:
        path: a GGUF file or a model folder.

    Raises:
        wrenlm.FormatError: the vocabulary is missing or inconsistent.
        wrenlm.UnsupportedError: the tokenizer type or pre-tokenizer is not implemented.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._native = _core.Tokenizer(os.fsencode(path))  # bytes: a file name need not be valid UTF-8
        self._path = os.fspath(path)

    def encode(self, text: str, *, add_bos: bool = True, parse_special: bool = True) -> list[int]:
        """Text to token ids.

        Args:
            text: the text.
            add_bos: prepend BOS when the model asks for it (see ``add_bos``).
            parse_special: turn control tokens written in the text (``<|im_start|>``) into those
                tokens; when False they are tokenized as plain text.

        Returns:
            The token ids.
        """
        return self._native.encode(text, add_bos=add_bos, parse_special=parse_special)

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        """Token ids to text; bytes that are not valid UTF-8 become U+FFFD.

        Raises:
            ValueError: an id is out of range.
        """
        return self._native.decode(list(ids), skip_special=skip_special)

    def stream(self, ids: Iterable[int], *, skip_special: bool = True) -> Iterator[str]:
        """Decodes ids one at a time, yielding text pieces that never split a character.

        Example:
            >>> "".join(tok.stream(tok.encode("안녕하세요")))
            '안녕하세요'
        """
        d = _core.Detokenizer(self._native, skip_special=skip_special)
        for i in ids:
            piece = d.push(i)
            if piece:
                yield piece
        tail = d.flush()
        if tail:
            yield tail

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (a control token: its text)."""
        return self._native.token_bytes(token_id)

    def token_id(self, text: str) -> int | None:
        """The id of the token whose vocabulary text is exactly ``text``, or None."""
        i = self._native.token_id(text)
        return None if i < 0 else i

    def is_eog(self, token_id: int) -> bool:
        """Whether the token ends generation (EOS, EOT, ``<|im_end|>``, ...)."""
        return self._native.is_eog(token_id)

    def is_control(self, token_id: int) -> bool:
        """Whether the token is a control token."""
        return self._native.is_control(token_id)

    @property
    def n_vocab(self) -> int:
        """Vocabulary size."""
        return self._native.n_vocab

    @property
    def bos_id(self) -> int | None:
        """The BOS token id, or None."""
        return None if self._native.bos_id < 0 else self._native.bos_id

    @property
    def eos_id(self) -> int | None:
        """The EOS token id, or None."""
        return None if self._native.eos_id < 0 else self._native.eos_id

    @property
    def add_bos(self) -> bool:
        """Whether the model asks for BOS at the start of a prompt."""
        return self._native.add_bos

    def __len__(self) -> int:
        return self._native.n_vocab

    def __repr__(self) -> str:
        return f"Tokenizer({self._path!r}, pre={self._native.pre!r}, n_vocab={self.n_vocab})"
