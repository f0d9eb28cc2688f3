"""Quiet imports for the command-line tools.

``import mujoco.mjx`` probes its optional warp backend and *prints* (to stdout, not a
warning or a log record) "Failed to import warp: ..." and "Failed to import mujoco_warp: ..."
when warp is not installed, which is the normal case for the JAX backend this project uses.
The CLIs call :func:`import_mjx` before anything else imports MJX: it captures exactly those
lines and passes any other output through. It is not done in the package ``__init__``:
importing mujoco there would fix the GL backend before ``play``/``view`` choose ``MUJOCO_GL``.
"""
from __future__ import annotations

import contextlib
import io
import sys

_WARP_LINES = ("Failed to import warp:", "Failed to import mujoco_warp:")


def import_mjx():
    """``import mujoco.mjx`` without its warp-probe lines (a no-op once it is imported)."""
    if "mujoco.mjx" in sys.modules:
        return
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            import mujoco.mjx  # noqa: F401
    finally:
        other = [line for line in buf.getvalue().splitlines(keepends=True) if not line.startswith(_WARP_LINES)]
        sys.stdout.write("".join(other))
