"""Where the project's data lives: the one place that knows a checkout from an install.

A checkout (or an editable install) has ``robots/``, ``motions/`` and ``configs/`` at its
top, beside ``pyproject.toml``; a wheel carries them in ``mjxmimic/assets/`` (see
pyproject.toml). Relative paths in robot specs, configs and dataset YAMLs resolve against
:data:`REPO_ROOT` either way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["IN_CHECKOUT", "REPO_ROOT", "CONFIGS_DIR", "ROBOTS_DIR", "MOTIONS_DIR", "default_runs_dir",
           "shared_dir"]

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
