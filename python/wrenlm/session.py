"""A conversation that keeps its computed keys and values between calls (``Model.session()``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from wrenlm import _core
from wrenlm.stream import Stream

if TYPE_CHECKING:
    from wrenlm.model import Model, Prompt

Message = Mapping[str, Any]


class Session:
    """One conversation or document with the model, kept computed: each call continues from the
    keys and values of everything before it, so only the new tokens are evaluated.

    ``stream()`` / ``generate()`` append text to what the session holds and continue it;
    ``chat()`` keeps a message list, renders it with the model's chat template each turn and
    evaluates only what the template added since the last turn. ``save(path)`` writes the state to
    a file and ``Model.load_session(path)`` brings it back (in another process too).

    A session continues exactly where it stopped: the reply's positions stay as they were computed
    (one token per pass), so a turn's logits equal a cold evaluation of the whole conversation up
    to float rounding (the automatic prefix cache, by contrast, reuses only positions it can
    reproduce bit for bit). Not thread-safe: one call at a time per session.

    Example:
        >>> s = model.session()
        >>> s.chat("What is RAG?")
        >>> s.chat("Give an example.")      # evaluates only the new turn
        >>> s.save("chat.wrens"); s2 = model.load_session("chat.wrens")
    """

    def __init__(self, model: Model, native: Any = None, tokens: Sequence[int] = (),
                 messages: Sequence[Message] = ()) -> None:
        self._model = model
        self._native: Any = native if native is not None else model._e.session()
        self._tokens: list[int] = list(tokens)  # what the native cache holds, position by position
        self._messages: list[dict[str, Any]] = [dict(m) for m in messages]
        self._running: Stream | None = None
        self._running_ids: list[int] = []  # the running generation's prompt

    @property
    def tokens(self) -> list[int]:
        """The token ids the session holds (its context so far)."""
        self._settle(only_if_done=True)
        return list(self._tokens)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (``chat()`` calls; replies included)."""
        return [dict(m) for m in self._messages]

    @property
    def kv_bytes(self) -> int:
        """Bytes of KV-cache pages the session holds."""
        self._settle(only_if_done=True)
        return int(self._native.kv_bytes)

    def reset(self) -> None:
        """Forgets everything: an empty context and no messages."""
        self._native = self._model._e.session()
        self._tokens = []
        self._messages = []

    # -- text --------------------------------------------------------------------------------
    def stream(self, text: Prompt, **kwargs: Any) -> Stream:
        """Appends text (a string, or token ids) to the session and yields the continuation, as
        :meth:`Model.stream` (same keyword arguments). The session then holds text + the
        continuation (whatever was generated before a ``close()`` too)."""
        self._settle()
        if isinstance(text, str):
            new = self._model._e.tokenize(text, add_bos=not self._tokens, special=True)
        else:
            new = self._model._ids(text)
        return self._continue(self._tokens + new, **kwargs)

    def generate(self, text: Prompt, **kwargs: Any) -> str:
        """:meth:`stream`, joined."""
        return "".join(self.stream(text, **kwargs))

    # -- chat --------------------------------------------------------------------------------
    def chat(self, message: Union[str, Message, Sequence[Message]], *, stream: bool = False,
             **kwargs: Any) -> Union[str, Iterator[str]]:
        """Adds a user message (a string), a message dict or several, and returns the assistant's
        reply (pieces with ``stream=True``); the reply joins the messages once complete.

        The whole conversation is rendered with the model's chat template each turn; the tokens it
        shares with what the session holds are not evaluated again (for templates that render the
        earlier turns unchanged, that is all of them: each turn evaluates its own new tokens).
        """
        self._settle()
        if isinstance(message, str):
            added: list[dict[str, Any]] = [{"role": "user", "content": message}]
        elif isinstance(message, Mapping):
            added = [dict(message)]
        else:
            added = [dict(m) for m in message]
        messages = self._messages + added
        ids = self._model._chat_ids(messages)
        st = self._continue(ids, **kwargs)
        self._messages = messages

        def pieces() -> Iterator[str]:
            reply = []
            for piece in st:
                reply.append(piece)
                yield piece
            if st.finish_reason != "cancelled":
                self._messages.append({"role": "assistant", "content": "".join(reply)})

        return pieces() if stream else "".join(pieces())

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the session (tokens, keys and values, last logits, messages) to path, atomically.
        The file is only valid for the same model file and options (checked on load)."""
        import json

        self._settle()
        blob = _core.save_session(self._model._e, self._native, self._tokens)
        meta = json.dumps({"messages": self._messages, "tokens": self._tokens}).encode()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".wrenlm-session-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + len(meta).to_bytes(8, "little") + meta + blob)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, model: Model, path: str | os.PathLike[str]) -> Session:
        """The session saved at path, for model. FormatError for a file that is not one, is
        truncated or corrupted, or was saved with another model or options."""
        import json

        path = os.fspath(path)
        limit = _core.max_session_bytes(model._e) + (64 << 20)
        size = os.path.getsize(path)
        if size > limit:
            raise _core.FormatError(f"{path}: {size} bytes is more than a session of this model can hold")
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8:
            raise _core.FormatError(f"{path}: not a wrenlm session file")
        n_meta = int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 8], "little")
        start = len(_MAGIC) + 8
        if n_meta > len(data) - start:
            raise _core.FormatError(f"{path}: truncated session file (messages)")
        try:
            meta = json.loads(data[start:start + n_meta].decode())
            messages, tokens = meta["messages"], meta["tokens"]
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise ValueError("messages must be a list of objects")
            if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
                raise ValueError("tokens must be a list of integers")
        except (ValueError, KeyError, TypeError) as e:
            raise _core.FormatError(f"{path}: bad messages record: {e}") from None
        native, held = _core.load_session(model._e, data[start + n_meta:], path)
        # The cache holds the first tokens of the text (all but the last sampled ones).
        if tokens[:len(held)] != list(held) or len(tokens) > len(held) + 8:
            raise _core.FormatError(f"{path}: the text's tokens do not match the cached ones")
        if any(not 0 <= t < model.info["n_vocab"] for t in tokens):
            raise _core.FormatError(f"{path}: a token id is outside the vocabulary")
        return cls(model, native, tokens, messages)

    # -- internals ---------------------------------------------------------------------------
    def _settle(self, only_if_done: bool = False) -> None:
        """Takes the state of the generation that ran last: once it is over, or (a new call, save)
        now, stopping it if its reader left it unfinished (what it computed is kept)."""
        st = self._running
        if st is None or (only_if_done and st.finish_reason is None):
            return
        st.close()
        native = st._gen.take_session()
        self._running = None
        if native is not None:
            # Every sampled token belongs to the text, though the last one (or, after a cancel,
            # the last few) is not in the cache yet: the next call evaluates it first.
            self._tokens = self._running_ids + st.tokens
            self._native = native

    def _continue(self, ids: list[int], **kwargs: Any) -> Stream:
        self._settle()
        # What the session holds and the new prompt share (a re-rendered conversation may differ
        # near the end of the previous reply): that much is reused, the rest evaluated.
        common = 0
        for a, b in zip(self._tokens, ids):
            if a != b:
                break
            common += 1
        st = self._model.stream(ids, **kwargs)  # not started before its first next()
        st._gen.keep_session()
        if common:
            st._gen.reuse_prefix(self._native, common, aligned=False)
        st._gen.start()
        self._running, self._running_ids = st, ids
        return st


_MAGIC = b"WRENLMSESSION\x00\x01\x00"
