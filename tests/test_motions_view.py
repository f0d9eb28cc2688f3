"""Viewer: headless mp4 through the automatically picked GL backend."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mjxmimic import view
from mjxmimic.motions.io import save_clip
from mjxmimic.robots import load_robot
from mjxmimic.tools.synthetic import synthetic_clip

# the CLI runs in a subprocess started from this (JAX-threaded) process: exec follows the fork
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")


@pytest.fixture(scope="module")
def backend():
    b = next((b for b in ("egl", "osmesa") if view.gl_backend_works(b)), None)
    if b is None:
        pytest.skip("no headless OpenGL backend renders here (MUJOCO_GL=egl needs libegl1 + libegl-mesa0, "
                    "osmesa needs libosmesa6)")
    return b


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    env["JAX_PLATFORMS"] = "cpu"
    return env


def test_select_gl_backend(backend, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert view.select_gl_backend(set_env=False) == "osmesa"   # the user's choice wins
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert view.select_gl_backend(set_env=False) == backend   # first one that renders


def test_cli_writes_mp4_of_a_sequence(backend, tmp_path):
    import imageio.v3 as iio

    k1 = load_robot("k1")
    a = save_clip(synthetic_clip(k1, frames=11, fps=20.0, speed=1.0, amp=0.5, name="a"), tmp_path / "a.npz")
    save_clip(synthetic_clip(k1, frames=6, fps=10.0, loop="wrap", name="b"), tmp_path / "b.npz")
    (tmp_path / "ds.yaml").write_text("motions:\n  - {file: b.npz, weight: 1}\n")
    out = tmp_path / "v.mp4"
    r = subprocess.run([sys.executable, "-m", "mjxmimic.view", str(a), str(tmp_path / "ds.yaml"), "--robot", "k1",
                        "--out", str(out), "--fps", "20", "--width", "96", "--height", "64"],
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"MUJOCO_GL={backend}" in r.stdout
    frames = iio.imread(out)
    # clip a: 0.5 s at 20 fps -> 11 frames; clip b: 0.5 s -> 11 frames
    assert frames.shape == (22, 64, 96, 3)
    assert frames.mean() > 10                       # a lit scene, not a black frame
    assert np.abs(frames[0].astype(float) - frames[10].astype(float)).mean() > 0.5  # the robot moved


def test_cli_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "v.mp4"
    r = subprocess.run([sys.executable, "-m", "mjxmimic.view", str(tmp_path / "nope.pkl"), "--robot", "k1",
                        "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode in (2, 3)
    assert "nope.pkl" in r.stderr or "OpenGL" in r.stderr
    assert not out.exists()
