"""Where the project's data lives: the one place that knows a checkout from an install.

A checkout (or an editable install) has ``robots/``, ``motions/`` and ``configs/`` at its
top, beside ``pyproject.toml``; a wheel carries them in ``mjxmimic/assets/`` (see
pyproject.toml). Relative paths in robot specs, configs and dataset YAMLs resolve against
:data:`REPO_ROOT` either way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["IN_CHECKOUT", "REPO_ROOT", "CONFIGS_DIR", "ROBOTS_DIR", "MOTIONS_DIR", "default_runs_dir",
           "shared_dir", "compile_cache_dir", "enable_compile_cache"]

_PKG = Path(__file__).resolve().parent
_SRC_ROOT = _PKG.parent

IN_CHECKOUT: bool = (_SRC_ROOT / "pyproject.toml").exists() and (_SRC_ROOT / "robots").is_dir()
REPO_ROOT: Path = _SRC_ROOT if IN_CHECKOUT else _PKG / "assets"
CONFIGS_DIR: Path = REPO_ROOT / "configs"
ROBOTS_DIR: Path = REPO_ROOT / "robots"
MOTIONS_DIR: Path = REPO_ROOT / "motions"


def default_runs_dir() -> Path:
    """Where runs go without ``--out``: ``runs/`` in a checkout, else ``./runs`` (the
    current directory at call time: an installed package's folder is no place for runs)."""
    return REPO_ROOT / "runs" if IN_CHECKOUT else Path.cwd() / "runs"


def shared_dir() -> Optional[Path]:
    """The ``shared/`` folder beside a checkout (vendor URDFs and meshes, real clips), or None
    when there is none (an installed package, or a checkout without it)."""
    d = REPO_ROOT.parent / "shared"
    return d if IN_CHECKOUT and d.is_dir() else None


def compile_cache_dir() -> Path:
    """JAX's persistent compilation cache for GPU/TPU runs: ``$MJXMIMIC_CACHE`` or
    ``$XDG_CACHE_HOME/mjxmimic/jax`` (default ``~/.cache/mjxmimic/jax``)."""
    if os.environ.get("MJXMIMIC_CACHE"):
        return Path(os.environ["MJXMIMIC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mjxmimic" / "jax"


def enable_compile_cache(backend: str) -> Optional[Path]:
    """Turn on JAX's persistent compilation cache on a GPU/TPU (the MJX training iteration takes
    ~90 s to compile on an H200; a resumed or repeated run then loads it in ~15 s). Not on a
    CPU, where compiles are cheaper than the cache's disk use. A cache dir set through JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` wins. Returns the directory in use, or None."""
    import jax
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    if backend == "cpu" or os.environ.get("MJXMIMIC_CACHE", "x") == "":
        return None
    d = compile_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(d))
    return d
