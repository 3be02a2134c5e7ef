"""Imports the compiled core, making sure the OpenBLAS it links against can be found."""

from __future__ import annotations

import ctypes
import importlib
import os


def _preload_openblas() -> None:
    # The extension's rpath points into the scipy-openblas32 wheel next to it in site-packages.
    # Where that layout does not hold (in-tree builds, unusual installs), load the library by path
    # first so the dynamic linker finds it already loaded.
    try:
        import scipy_openblas32
    except ImportError:
        return
    lib = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    if os.path.exists(lib):
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)


def load_core():
    try:
        return importlib.import_module("wrenlm._core")
    except ImportError as first:
        _preload_openblas()
        try:
            return importlib.import_module("wrenlm._core")
        except ImportError:
            raise first from None
