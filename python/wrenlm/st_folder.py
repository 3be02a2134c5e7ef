"""A sentence-transformers folder's own pipeline: what happens to a text before and after the network.

A folder saved by ``SentenceTransformer.save`` lists its modules in ``modules.json``: the Transformer
(the network the engine runs, at the folder's root), then a Pooling module (token vectors -> one
vector), then any number of Dense (linear layer + activation) and Normalize (unit L2 length) modules.
``sentence_bert_config.json`` says how inputs are cut (``max_seq_length``) and whether they are
lower-cased first (``do_lower_case``). This module reads those files and applies them as
sentence-transformers does, in numpy; the engine computes the hidden states in between.

Example:
    >>> pipe = read_st_folder("all-MiniLM-L6-v2/")
    >>> pipe.max_seq_length, pipe.pooling.modes, pipe.ends_normalized
    (256, ('mean',), True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from wrenlm import _core

MAX_CONFIG_BYTES = 1 << 20  # a module config is a few hundred bytes; refuse anything absurd

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# sentence-transformers' older flags, in the order it concatenates the modes.
_LEGACY_FLAGS = (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                 ("pooling_mode_mean_tokens", "mean"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                 ("pooling_mode_weightedmean_tokens", "weightedmean"), ("pooling_mode_lasttoken", "lasttoken"))
# Model.embed's pooling names -> sentence-transformers' ("last" is wrenlm's name for "lasttoken").
POOLING_ALIASES = {"last": "lasttoken", "mean_sqrt_len": "mean_sqrt_len_tokens"}


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


# torch.nn activation classes a Dense module may name (its config's "activation_function").
ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": lambda x: x,
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0),
    "torch.nn.modules.activation.Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "torch.nn.modules.activation.SiLU": lambda x: x / (1 + np.exp(-x)),
    "torch.nn.modules.activation.GELU": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
}


@dataclass(frozen=True)
class Pooling:
    """A Pooling module: the modes, concatenated in this order, and whether a prompt's tokens count."""

    modes: tuple[str, ...]
    include_prompt: bool = True


@dataclass(frozen=True)
class Dense:
    """A Dense module: ``activation(x W^T + b)`` (+ x, or x R^T, with ``use_residual``)."""

    path: str
    weight: np.ndarray  # (out_features, in_features) float32
    bias: Optional[np.ndarray]  # (out_features,) float32
    activation: str  # a key of ACTIVATIONS
    residual: Optional[np.ndarray] = None  # (out_features, in_features): the residual's projection
    use_residual: bool = False

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x64 = x.astype(np.float64)
        y = x64 @ self.weight.T.astype(np.float64)
        if self.bias is not None:
            y = y + self.bias
        y = ACTIVATIONS[self.activation](y)
        if self.use_residual:
            y = y + (x64 if self.residual is None else x64 @ self.residual.T.astype(np.float64))
        return y.astype(np.float32)


@dataclass(frozen=True)
class Normalize:
    """A Normalize module: each vector scaled to unit L2 length (torch's ``F.normalize``, eps 1e-12)."""

    path: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return normalize(x)


Step = Union[Dense, Normalize]


@dataclass(frozen=True)
class StPipeline:
    """What a sentence-transformers folder declares around its network.

    Attributes:
        max_seq_length: inputs are cut to this many tokens (special tokens included), or None:
            ``sentence_bert_config.json``'s, else the tokenizer's ``model_max_length`` capped at
            ``max_position_embeddings``, as sentence-transformers takes it.
        do_lower_case: texts are lower-cased before tokenizing.
        pooling: the Pooling module.
        steps: the Dense and Normalize modules after it, in order.
        prompt: the default prompt put before every text (``config_sentence_transformers.json``'s
            ``prompts[default_prompt_name]``), "" if none; the Pooling module's ``include_prompt``
            says whether its tokens are pooled.
        unsupported: module types found that this pipeline cannot apply ("path: type"); embedding
            with such a folder raises UnsupportedError naming them.
    """

    folder: str
    max_seq_length: Optional[int]
    do_lower_case: bool
    pooling: Optional[Pooling]
    steps: tuple[Step, ...]
    unsupported: tuple[str, ...] = ()
    prompt: str = ""

    @property
    def ends_normalized(self) -> bool:
        """True when the last module is a Normalize: the folder's vectors have unit length."""
        return bool(self.steps) and isinstance(self.steps[-1], Normalize)

    def check_supported(self) -> None:
        """Raises UnsupportedError naming the modules this pipeline cannot apply, if any."""
        if self.unsupported:
            raise _core.UnsupportedError(
                f"{os.path.join(self.folder, 'modules.json')}: sentence-transformers module(s) "
                f"{', '.join(self.unsupported)} are not supported (supported: a Transformer at the folder's root, "
                f"then Pooling, Dense and Normalize)")
        if self.pooling is None:
            raise _core.UnsupportedError(f"{os.path.join(self.folder, 'modules.json')}: no Pooling module, so no "
                                         f"single vector per text (token embeddings: Model.hidden_states)")

    def after_pooling(self, x: np.ndarray, *, normalize_output: Optional[bool]) -> np.ndarray:
        """Applies the Dense and Normalize modules to pooled vectors (n, dim).

        normalize_output: None applies every module as declared; False leaves out the trailing
        Normalize modules (those after the last Dense); True applies them and normalizes at the end.
        """
        steps = list(self.steps)
        if normalize_output is not None:
            while steps and isinstance(steps[-1], Normalize):
                steps.pop()
        for step in steps:
            if isinstance(step, Dense) and x.shape[1] != step.in_features:
                raise ValueError(f"the Dense module {step.path!r} takes {step.in_features} features, but the pooled "
                                 f"vectors have {x.shape[1]} (pooling must give what the folder was trained with)")
            x = step(x)
        return normalize(x) if normalize_output else x


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 length; a zero row stays zero (torch's ``F.normalize``, eps 1e-12)."""
    norm = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def pool(states: np.ndarray, modes: Sequence[str], skip: int = 0) -> np.ndarray:
    """One vector from one input's token vectors, as sentence-transformers' Pooling computes it.

    Args:
        states: (n_tokens, dim) final hidden states of one input (no padding).
        modes: pooling modes (POOLING_MODES), concatenated in the order given.
        skip: leading tokens left out (a prompt, with ``include_prompt`` false); weighted mean keeps
            the other tokens' original position weights, as sentence-transformers does.

    Returns:
        (len(modes) * dim,) float32.
    """
    n = states.shape[0]
    if not 0 <= skip < n:
        raise ValueError(f"cannot leave out {skip} of {n} tokens")
    kept = states[skip:].astype(np.float64)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(kept[0])
        elif mode == "max":
            out.append(kept.max(axis=0))
        elif mode == "mean":
            out.append(kept.sum(axis=0) / len(kept))
        elif mode == "mean_sqrt_len_tokens":
            out.append(kept.sum(axis=0) / math.sqrt(len(kept)))
        elif mode == "weightedmean":
            w = np.arange(skip + 1, n + 1, dtype=np.float64)[:, None]
            out.append((kept * w).sum(axis=0) / w.sum())
        elif mode == "lasttoken":
            out.append(kept[-1])
        else:
            raise ValueError(f"unknown pooling mode {mode!r}; expected one of {', '.join(POOLING_MODES)}")
    return np.concatenate(out).astype(np.float32)


# -- reading a folder ----------------------------------------------------------------------------

def _read_json(path: str) -> Any:
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise _core.FormatError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a sentence-transformers config")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise _core.FormatError(f"{path}: not valid JSON: {e}") from None


def _field(doc: Any, path: str, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    if not isinstance(doc, dict):
        raise _core.FormatError(f"{path}: expected a JSON object, found {type(doc).__name__}")
    value = doc.get(key, default)
    if value is None:
        return default
    # bool is an int in Python: an integer field must not accept true/false, and the reverse.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _core.FormatError(f"{path}: {key!r} must be {want}, found {json.dumps(value)[:80]}")
    return value


def _subfolder(folder: str, entry_path: str, where: str) -> str:
    parts = entry_path.replace("\\", "/").split("/")
    if os.path.isabs(entry_path) or ".." in parts:
        raise _core.FormatError(f"{where}: module path {entry_path!r} must be a folder inside the model folder")
    return os.path.join(folder, entry_path)


def _read_pooling(path: str) -> Pooling:
    cfg_path = os.path.join(path, "config.json")
    cfg = _read_json(cfg_path)
    mode = _field(cfg, cfg_path, "pooling_mode", (str, list))
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(name for key, name in _LEGACY_FLAGS if _field(cfg, cfg_path, key, bool, False))
        modes = modes or ("mean",)  # sentence-transformers' default when no flag is set
    for m in modes:
        if m not in POOLING_MODES:
            raise _core.FormatError(f"{cfg_path}: unknown pooling mode {json.dumps(m)[:80]}; "
                                    f"expected one of {', '.join(POOLING_MODES)}")
    if not modes:
        raise _core.FormatError(f"{cfg_path}: 'pooling_mode' is an empty list")
    return Pooling(modes=modes, include_prompt=_field(cfg, cfg_path, "include_prompt", bool, True))


def _tensor(st: Any, file: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
    found = {n: (dtype, tuple(s)) for n, dtype, s in st.tensors}
    if name not in found:
        raise _core.FormatError(f"{file}: no tensor {name!r} (found: {', '.join(sorted(found)) or 'none'})")
    dtype, got = found[name]
    if got != shape:
        raise _core.FormatError(f"{file}: tensor {name!r} has shape {list(got)}, expected {list(shape)}")
    raw = st.tensor_bytes(name)  # UnsupportedError unless F32/F16/BF16
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    else:  # BF16: the high half of a float32
        a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return a.reshape(shape).astype(np.float32)


def _read_dense(path: str, entry_path: str) -> Dense:
    cfg_path = os.path.join(path, "config.json")
    cfg = _read_json(cfg_path)
    n_in = _field(cfg, cfg_path, "in_features", int)
    n_out = _field(cfg, cfg_path, "out_features", int)
    for key, v in (("in_features", n_in), ("out_features", n_out)):
        if v is None or not 1 <= v <= (1 << 20):
            raise _core.FormatError(f"{cfg_path}: {key!r} must be an integer in 1..{1 << 20}, found {v!r}")
    has_bias = _field(cfg, cfg_path, "bias", bool, True)
    activation = _field(cfg, cfg_path, "activation_function", str, "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATIONS:
        raise _core.UnsupportedError(f"{cfg_path}: activation function {activation!r} is not supported "
                                     f"(supported: {', '.join(a.rsplit('.', 1)[1] for a in ACTIVATIONS)})")
    use_residual = _field(cfg, cfg_path, "use_residual", bool, False)
    for key in ("module_input_name", "module_output_name"):
        name = _field(cfg, cfg_path, key, str, "sentence_embedding")
        if name != "sentence_embedding":
            raise _core.UnsupportedError(f"{cfg_path}: {key}={name!r} is not supported (only 'sentence_embedding')")
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        pickled = [n for n in ("pytorch_model.bin", "model.pt") if os.path.isfile(os.path.join(path, n))]
        if pickled:
            raise _core.UnsupportedError(f"{os.path.join(path, pickled[0])}: pickle weights are refused (they can run "
                                         f"code when loaded); re-save the model with safetensors")
        raise _core.FormatError(f"{path}: the Dense module has no model.safetensors")
    st = _core.SafetensorsFile(weights)
    weight = _tensor(st, weights, "linear.weight", (n_out, n_in))
    bias = _tensor(st, weights, "linear.bias", (n_out,)) if has_bias else None
    residual = _tensor(st, weights, "residual.weight", (n_out, n_in)) if use_residual and n_in != n_out else None
    return Dense(path=entry_path, weight=weight, bias=bias, activation=activation, residual=residual,
                 use_residual=use_residual)


def _default_max_seq_length(folder: str) -> Optional[int]:
    """sentence-transformers' limit when sentence_bert_config.json names none: the tokenizer's
    ``model_max_length``, capped at the position table (``max_position_embeddings``)."""
    limits = []
    for name, key in (("tokenizer_config.json", "model_max_length"), ("config.json", "max_position_embeddings")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            doc = _read_json(path)
            value = doc.get(key) if isinstance(doc, dict) else None
            # transformers writes "no limit" as a huge float (1e30); -1 means none (XLNet)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < (1 << 31):
                limits.append(value)
    return min(limits) if limits else None


def read_st_folder(folder: str | os.PathLike[str]) -> Optional[StPipeline]:
    """The sentence-transformers pipeline a model folder declares, or None without ``modules.json``.

    Args:
        folder: a Hugging Face model folder.

    Returns:
        The pipeline, or None when the path is not a folder or has no ``modules.json``.

    Raises:
        FormatError: a config file is malformed (the message names the file and the key).
        UnsupportedError: a Dense module's activation, input or weight file cannot be used.
    """
    folder = os.fspath(folder)
    modules_path = os.path.join(folder, "modules.json")
    if not os.path.isdir(folder) or not os.path.isfile(modules_path):
        return None
    entries = _read_json(modules_path)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _core.FormatError(f"{modules_path}: expected a list of module objects")
    max_seq_length: Optional[int] = None
    do_lower_case = False
    pooling: Optional[Pooling] = None
    steps: list[Step] = []
    unsupported: list[str] = []
    seen_transformer = False
    # sentence-transformers runs the modules in the order of their "idx" (their list order if absent).
    ordered = sorted(enumerate(entries), key=lambda ke: (_field(ke[1], modules_path, "idx", int, ke[0]), ke[0]))
    for _, entry in ordered:
        type_name = _field(entry, modules_path, "type", str)
        entry_path = _field(entry, modules_path, "path", str, "")
        if type_name is None:
            raise _core.FormatError(f"{modules_path}: a module has no 'type'")
        kind = type_name.rsplit(".", 1)[-1]
        where = _subfolder(folder, entry_path, modules_path)
        if kind == "Transformer" and not seen_transformer and entry_path in ("", ".") and pooling is None:
            seen_transformer = True
            cfg_path = os.path.join(folder, "sentence_bert_config.json")
            if os.path.isfile(cfg_path):
                cfg = _read_json(cfg_path)
                max_seq_length = _field(cfg, cfg_path, "max_seq_length", int)
                if max_seq_length is not None and max_seq_length < 1:
                    raise _core.FormatError(f"{cfg_path}: 'max_seq_length' must be >= 1, found {max_seq_length}")
                do_lower_case = _field(cfg, cfg_path, "do_lower_case", bool, False)
            if max_seq_length is None:
                max_seq_length = _default_max_seq_length(folder)
        elif kind == "Pooling" and seen_transformer and pooling is None:
            pooling = _read_pooling(where)
        elif kind == "Dense" and pooling is not None:
            steps.append(_read_dense(where, entry_path))
        elif kind == "Normalize" and pooling is not None:
            steps.append(Normalize(path=entry_path))
        else:
            unsupported.append(f"{entry_path or '.'}: {type_name}")
    prompt = ""
    st_config = os.path.join(folder, "config_sentence_transformers.json")
    if os.path.isfile(st_config):
        doc = _read_json(st_config)
        name = _field(doc, st_config, "default_prompt_name", str)
        if name is not None:
            prompts = _field(doc, st_config, "prompts", dict, {})
            if not isinstance(prompts.get(name), str):
                raise _core.FormatError(f"{st_config}: default_prompt_name {name!r} names no prompt in 'prompts'")
            prompt = prompts[name]
    if not seen_transformer and not unsupported:
        unsupported.append("no Transformer module at the folder's root")
    return StPipeline(folder=folder, max_seq_length=max_seq_length, do_lower_case=do_lower_case, pooling=pooling,
                      steps=tuple(steps), unsupported=tuple(unsupported), prompt=prompt)
