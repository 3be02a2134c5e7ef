"""Ray Data on wrenlm: :func:`embed` and :func:`generate` add a column to a ``ray.data.Dataset``,
computed by a pool of Ray actors that each load the model once (extra ``wrenlm[ray]``).

    >>> import ray
    >>> from wrenlm.integrations import ray as wren_ray
    >>> ray.init()                                     # or ray.init(address="auto") on a cluster
    >>> ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    >>> vecs = wren_ray.embed(ds, model="all-MiniLM-L6-v2/", concurrency=2, n_threads=1, id_column="id")
    >>> vecs.take(1)[0]["embedding"]                   # float32 (384,)
    >>> out = wren_ray.generate(ds, prompt_column="text", concurrency=2, max_tokens=64, chat=True)

How the work is spread: ``concurrency`` actors (by default as many as the cluster's CPUs allow), each
with its own :class:`wrenlm.Model` of ``n_threads`` compute threads, and each reserving
``num_cpus=n_threads`` from Ray, so Ray never places more threads on a node than it has CPUs. The
model goes to the actors as its path and constructor options (never its weights): the path must be
readable on every node that runs an actor.

The returned Dataset is lazy, like every Ray Data transform: the work runs when it is consumed
(``take_all``, ``iter_batches``, ``write_parquet``...). Its rows keep the input order (its execution
preserves order; later transforms chained on it inherit that), and Ray Data's progress bars show while
it runs (``progress=False`` turns them off for this Dataset).

Failures: a batch that raises is retried row by row in the same actor, to find the rows at fault.
``on_error="raise"`` (the default) then fails the job with a :class:`BatchError` naming those rows (by
``id_column`` when given, else by position in the batch, with the start of each text) and each row's
error; Ray reports it wrapped in its own exception, whose message holds that text. ``on_error="record"``
keeps going: the failed rows get ``error_column`` set to their error message, a null text
(:func:`generate`) or a vector of NaN (:func:`embed`); the other rows' ``error_column`` is null.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np

try:
    import ray.data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('wrenlm.integrations.ray needs Ray Data: pip install "wrenlm[ray]"') from e

import wrenlm
from wrenlm._args import check_int

ON_ERROR = ("raise", "record")
ModelArg = Union[wrenlm.Model, str, "os.PathLike[str]", None]
Concurrency = Union[int, tuple[int, int], None]
_PREVIEW_CHARS = 60


class BatchError(wrenlm.WrenError):
    """Rows of one batch failed.

    Attributes:
        rows: the failed rows: their ``id_column`` values, or their positions in the batch when no
            id column was given.
        errors: one message per failed row, ``"ErrorType: text"``.
    """

    def __init__(self, message: str, rows: Sequence[Any] = (), errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.rows = list(rows)
        self.errors = list(errors)

    def __reduce__(self) -> tuple[Any, ...]:  # Ray ships exceptions between processes by pickling
        return type(self), (str(self), self.rows, self.errors)


# -- the public functions ------------------------------------------------------------------------------
def embed(ds: ray.data.Dataset, model: ModelArg = None, *, column: str = "text", output_column: str = "embedding",
          concurrency: Concurrency = None, n_threads: int = 1, batch_size: int = 32, id_column: Optional[str] = None,
          on_error: str = "raise", error_column: str = "error", progress: Optional[bool] = None,
          model_kwargs: Optional[Mapping[str, Any]] = None, **embed_kwargs: Any) -> ray.data.Dataset:
    """ds with one more column, ``output_column``: the embedding of each row's ``column`` as
    :meth:`wrenlm.Model.embed` computes it (float32 vectors).

    Args:
        ds: the input rows; ``column`` holds strings (or token-id lists).
        model: a GGUF file or sentence-transformers folder, or a loaded :class:`wrenlm.Model` (its path
            and options are sent, not its weights). None: the default model, resolved on each node.
        column, output_column: the input column and the new one.
        concurrency: the number of actors (one model each), or ``(min, max)`` to let Ray scale the pool.
            None: as many as the cluster's nodes hold now (each node's CPUs // n_threads, summed).
        n_threads: compute threads per model; each actor reserves that many CPUs (``num_cpus``).
        batch_size: rows per call of an actor (Ray Data's batches; also ``Model.embed``'s batch).
        id_column: a column that names rows in error messages (``BatchError.rows``).
        on_error: ``"raise"`` fails the job on a failed row; ``"record"`` keeps going and writes the
            row's error into ``error_column`` (see the module's notes).
        progress: Ray Data's progress bars for this Dataset; None keeps its setting (on by default).
        model_kwargs: :class:`wrenlm.Model` options (``n_ctx``, ``kv_cache``...) when model is a path.
        **embed_kwargs: options of :meth:`wrenlm.Model.embed` (``normalize``, ``pooling``, ``truncate``).

    Returns:
        A lazy ``ray.data.Dataset`` in the input's row order.

    Raises:
        ValueError: an invalid argument (found here, before any actor starts).
        TypeError: an unknown option in embed_kwargs or model_kwargs.
    """
    _check_options("embed", wrenlm.Model.embed, embed_kwargs, ("texts", "batch_size"))
    return _map("embed", _Embedder, ds, model, model_kwargs, column=column, output_column=output_column,
                concurrency=concurrency, n_threads=n_threads, batch_size=batch_size, id_column=id_column,
                on_error=on_error, error_column=error_column, progress=progress,
                extra=dict(embed_kwargs, batch_size=batch_size))


def generate(ds: ray.data.Dataset, model: ModelArg = None, *, prompt_column: str = "prompt",
             output_column: str = "generated", chat: bool = False, concurrency: Concurrency = None, n_threads: int = 1,
             batch_size: int = 16, id_column: Optional[str] = None, on_error: str = "raise",
             error_column: str = "error", progress: Optional[bool] = None,
             model_kwargs: Optional[Mapping[str, Any]] = None, **generation_kwargs: Any) -> ray.data.Dataset:
    """ds with one more column, ``output_column``: the text :meth:`wrenlm.Model.generate` continues
    each row's ``prompt_column`` with (greedy by default, as there).

    The rows of a batch are generated together (continuous batching in the engine); each equals what
    its prompt gives alone, up to float rounding between batched and single passes.

    Args:
        ds: the input rows; ``prompt_column`` holds strings (or token-id lists).
        model: a GGUF file or a loaded :class:`wrenlm.Model`; None: the default model (SmolLM2).
        prompt_column, output_column: the input column and the new one.
        chat: send each prompt as one user message through the model's chat template (the reply
            :meth:`wrenlm.Model.chat` gives); False: continue the text as given.
        batch_size: prompts per call of an actor, decoded together.
        **generation_kwargs: options of :meth:`wrenlm.Model.stream` (``max_tokens``, ``temperature``,
            ``seed``, ``stop``...).

    The other arguments, the result and the errors are as for :func:`embed`.
    """
    if not isinstance(chat, bool):
        raise ValueError(f"generate: chat must be True or False, got {chat!r}")
    _check_options("generate", wrenlm.Model.stream, generation_kwargs, ("prompt",))
    return _map("generate", _Generator, ds, model, model_kwargs, column=prompt_column, output_column=output_column,
                concurrency=concurrency, n_threads=n_threads, batch_size=batch_size, id_column=id_column,
                on_error=on_error, error_column=error_column, progress=progress,
                extra=dict(generation_kwargs), chat=chat)


# -- driver side ---------------------------------------------------------------------------------------
def _check_options(what: str, method: Callable[..., Any], options: Mapping[str, Any], taken: Sequence[str]) -> None:
    """An option the wrenlm method does not take is a TypeError here, not in every actor later."""
    known = set(inspect.signature(method).parameters) - {"self", *taken}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{what}: unknown option(s) {', '.join(unknown)}; "
                        f"{method.__qualname__} takes {', '.join(sorted(known))}")


def _model_spec(what: str, model: ModelArg, model_kwargs: Optional[Mapping[str, Any]],
                n_threads: int) -> tuple[Optional[str], dict[str, Any]]:
    """The (path, options) each actor opens the model with; n_threads is the argument's."""
    model_kwargs = dict(model_kwargs or {})
    if "n_threads" in model_kwargs:
        raise ValueError(f"{what}: give n_threads as an argument of {what}() (it also sets each actor's num_cpus), "
                         f"not in model_kwargs")
    _check_options(what, wrenlm.Model.__init__, model_kwargs, ("path",))
    if isinstance(model, wrenlm.Model):
        if model_kwargs:
            raise ValueError(f"{what}: model_kwargs ({', '.join(sorted(model_kwargs))}) apply when model is a path; "
                             f"this model is already loaded")
        _, (path, options) = model.__reduce__()
    elif model is None:
        path, options = None, model_kwargs
    else:
        path = os.fspath(model)
        if not isinstance(path, str):
            raise ValueError(f"{what}: model must be a path, a wrenlm.Model or None, got {model!r}")
        # A relative path would be read from each worker's own working directory.
        path = os.path.abspath(os.path.expanduser(path)) if os.path.exists(os.path.expanduser(path)) else path
        options = model_kwargs
    return path, dict(options, n_threads=n_threads)


def _compute(what: str, concurrency: Concurrency, n_threads: int) -> ray.data.ActorPoolStrategy:
    if concurrency is None:  # fill the cluster as it is now: each actor needs n_threads CPUs on one node
        if not ray.is_initialized():
            ray.init()  # what Ray Data would do when the Dataset runs
        cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
        size = sum(c // n_threads for c in cpus)
        if size == 0:
            raise ValueError(f"{what}: n_threads={n_threads}, but the largest node of the Ray cluster has "
                             f"{max(cpus, default=0)} CPUs: no actor could be placed (lower n_threads, or give "
                             f"concurrency= if the cluster will grow)")
        return ray.data.ActorPoolStrategy(size=size)
    if isinstance(concurrency, tuple):
        if len(concurrency) != 2:
            raise ValueError(f"{what}: concurrency must be an int or a (min, max) pair, got {concurrency!r}")
        low = check_int("concurrency[0]", concurrency[0], minimum=1)
        high = check_int("concurrency[1]", concurrency[1], minimum=low)
        return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    return ray.data.ActorPoolStrategy(size=check_int("concurrency", concurrency, minimum=1))


def _map(what: str, worker: type, ds: ray.data.Dataset, model: ModelArg, model_kwargs: Optional[Mapping[str, Any]], *,
         column: str, output_column: str, concurrency: Concurrency, n_threads: int, batch_size: int,
         id_column: Optional[str], on_error: str, error_column: str, progress: Optional[bool],
         extra: dict[str, Any], chat: bool = False) -> ray.data.Dataset:
    if not isinstance(ds, ray.data.Dataset):
        raise ValueError(f"{what}: ds must be a ray.data.Dataset (e.g. ray.data.from_items(...)), got "
                         f"{type(ds).__name__}")
    n_threads = check_int("n_threads", n_threads, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if on_error not in ON_ERROR:
        raise ValueError(f"{what}: on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {on_error!r}")
    for name, value in (("column", column), ("output_column", output_column), ("error_column", error_column)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what}: {name} must be a non-empty string, got {value!r}")
    if id_column is not None and not isinstance(id_column, str):
        raise ValueError(f"{what}: id_column must be a column name or None, got {id_column!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"{what}: progress must be True, False or None, got {progress!r}")
    compute = _compute(what, concurrency, n_threads)
    path, options = _model_spec(what, model, model_kwargs, n_threads)
    job = _Job(what=what, column=column, output_column=output_column, id_column=id_column, on_error=on_error,
               error_column=error_column, options=extra, chat=chat)
    out = ds.map_batches(worker, fn_constructor_args=(path, options, job), batch_size=batch_size,
                         batch_format="numpy", compute=compute, num_cpus=n_threads)
    return _ordered(out, progress)


def _ordered(ds: ray.data.Dataset, progress: Optional[bool]) -> ray.data.Dataset:
    """ds with an execution context of its own that keeps blocks in input order (an actor pool
    otherwise hands them on as they finish) and shows or hides progress as asked. The input's context
    is shared by every Dataset derived from it, so it is copied rather than changed."""
    out = ray.data.Dataset.copy(ds, _deep_copy=True)
    out.context.execution_options.preserve_order = True
    if progress is not None:
        out.context.enable_progress_bars = progress
    return out


# -- actor side ----------------------------------------------------------------------------------------
class _Job:
    """What an actor does with each batch (sent to the actors by pickling)."""

    def __init__(self, *, what: str, column: str, output_column: str, id_column: Optional[str], on_error: str,
                 error_column: str, options: dict[str, Any], chat: bool) -> None:
        self.what = what
        self.column = column
        self.output_column = output_column
        self.id_column = id_column
        self.on_error = on_error
        self.error_column = error_column
        self.options = options
        self.chat = chat


def _load(path: Optional[str], options: dict[str, Any], what: str) -> wrenlm.Model:
    try:
        return wrenlm.Model(path, **options)
    except Exception as e:
        raise wrenlm.WrenError(
            f"wrenlm.integrations.ray.{what}: cannot load the model {path or '(default)'!r} on node "
            f"{socket.gethostname()} ({type(e).__name__}: {e}); the path must exist on every node that runs an "
            f"actor") from e


def _preview(item: Any) -> str:
    if isinstance(item, str):
        return repr(item if len(item) <= _PREVIEW_CHARS else item[:_PREVIEW_CHARS] + "...")
    return f"{type(item).__name__} value"


def _alone(message: str) -> str:
    """An error of a row run alone: Model.embed names it texts[0], its index in that one-row call."""
    return "the text" + message[len("texts[0]"):] if message.startswith("texts[0]") else message


def _item(value: Any) -> Any:
    """A column value as wrenlm takes it: str stays, a numpy array of ids becomes a list."""
    return value.tolist() if isinstance(value, np.ndarray) else value


class _Worker:
    """One Ray actor: loads the model once, then maps batches (dict of numpy columns) to batches."""

    def __init__(self, path: Optional[str], options: dict[str, Any], job: _Job) -> None:
        self.job = job
        self.model = _load(path, options, job.what)

    def run_all(self, items: list[Any]) -> Any:  # results of the whole batch
        raise NotImplementedError

    def run_one(self, item: Any) -> Any:  # the result of one row
        raise NotImplementedError

    def column(self, results: list[Any]) -> np.ndarray:  # per-row results (None: failed) as a column
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        job = self.job
        for name in (job.column, job.id_column):
            if name is not None and name not in batch:
                raise ValueError(f"wrenlm.integrations.ray.{job.what}: no column {name!r} in the dataset "
                                 f"(columns: {', '.join(sorted(batch))})")
        if job.output_column in batch:
            raise ValueError(f"wrenlm.integrations.ray.{job.what}: the dataset already has a column "
                             f"{job.output_column!r}; choose another output_column")
        items = [_item(v) for v in batch[job.column]]
        errors: list[Optional[str]] = [None] * len(items)
        try:
            out = self.run_all(items) if items else self.column([])
        except Exception as batch_error:  # find the rows at fault: each row alone
            results: list[Any] = []
            for k, item in enumerate(items):
                try:
                    results.append(self.run_one(item))
                except Exception as e:
                    results.append(None)
                    errors[k] = f"{type(e).__name__}: {_alone(str(e))}"
            if not any(errors):
                raise wrenlm.WrenError(f"wrenlm.integrations.ray.{job.what}: a batch of {len(items)} rows failed "
                                       f"({type(batch_error).__name__}: {batch_error}), though each row alone "
                                       f"succeeds") from batch_error
            if job.on_error == "raise":
                raise self.batch_error(batch, items, errors) from None
            out = self.column(results)
        batch = dict(batch)
        batch[job.output_column] = out
        if job.on_error == "record":
            batch[job.error_column] = np.array(errors, dtype=object)
        return batch

    def batch_error(self, batch: dict[str, np.ndarray], items: list[Any], errors: list[Optional[str]]) -> BatchError:
        job = self.job
        ids = batch[job.id_column].tolist() if job.id_column is not None else list(range(len(items)))
        bad = [k for k, err in enumerate(errors) if err is not None]
        name = (lambda k: f"{job.id_column}={ids[k]!r}") if job.id_column else (lambda k: f"row {k} of the batch")
        lines = [f"  {name(k)} ({_preview(items[k])}): {errors[k]}" for k in bad]
        hint = "" if job.id_column else "; id_column= names rows by a column of yours"
        message = (f"wrenlm.integrations.ray.{job.what}: {len(bad)} of the {len(items)} rows of a batch failed "
                   f"(on_error='record' keeps going and writes each row's error into {job.error_column!r}{hint}):\n"
                   + "\n".join(lines))
        return BatchError(message, [ids[k] for k in bad], [str(errors[k]) for k in bad])


class _Embedder(_Worker):
    def run_all(self, items: list[Any]) -> np.ndarray:
        return self.model.embed(items, **self.job.options)

    def run_one(self, item: Any) -> np.ndarray:
        return self.model.embed([item], **self.job.options)[0]

    def column(self, results: list[Any]) -> np.ndarray:
        done = [r for r in results if r is not None]
        width = done[0].shape[0] if done else self.run_one(".").shape[0]  # every row failed: probe the width
        out = np.full((len(results), width), np.nan, dtype=np.float32)
        for k, r in enumerate(results):
            if r is not None:
                out[k] = r
        return out


class _Generator(_Worker):
    def prompt(self, item: Any) -> Any:
        return self.model._chat_ids([{"role": "user", "content": item}]) if self.job.chat else item

    def run_all(self, items: list[Any]) -> np.ndarray:
        return self.column(self.model.generate([self.prompt(p) for p in items], **self.job.options))

    def run_one(self, item: Any) -> str:
        return self.model.generate(self.prompt(item), **self.job.options)

    def column(self, results: list[Any]) -> np.ndarray:
        return np.array(results, dtype=object)
