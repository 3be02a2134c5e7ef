"""Scratch folders of the atheris targets. libFuzzer ends a run with exit(), which skips Python's
atexit handlers, so a folder cannot remove itself: each is named after its process and a new run
removes those whose process is gone."""

from __future__ import annotations

import os
import shutil
import tempfile


def scratch_dir(prefix: str) -> str:
    """A fresh folder <tmp>/<prefix><pid>, after removing the <prefix><pid> folders of dead processes."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            continue
        pid = int(name[len(prefix):])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's
    path = os.path.join(root, f"{prefix}{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path
