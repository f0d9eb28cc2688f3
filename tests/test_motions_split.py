"""The runtime/tools split: training code never imports the offline tools, the old CLI names
still run, every write is atomic, and host FK of clip frames is MuJoCo's."""
from __future__ import annotations

import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from mjxmimic.io_util import atomic_write
from mjxmimic.motions.fk import body_poses, frame_kinematics
from mjxmimic.paths import REPO_ROOT

OLD_CLI = ("mjxmimic.motions.author", "mjxmimic.motions.clean", "mjxmimic.motions.retarget")
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "JAX_PLATFORMS": "cpu"}


def test_runtime_never_imports_tools():
    code = f"""
import importlib, pkgutil, sys
import mjxmimic.motions, mjxmimic.envs, mjxmimic.learning
for pkg in (mjxmimic.motions, mjxmimic.envs, mjxmimic.learning):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if m.name not in {OLD_CLI!r}:
            importlib.import_module(m.name)
loaded = sorted(n for n in sys.modules if n.startswith("mjxmimic."))
print("LOADED", len(loaded), "mjxmimic.motions.lib" in loaded, "mjxmimic.envs.deepmimic" in loaded)
print("TOOLS", [n for n in loaded if n.startswith("mjxmimic.tools") or n in {OLD_CLI!r}])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "True True" in r.stdout, r.stdout  # the walk really imported the runtime
    assert "TOOLS []" in r.stdout, r.stdout


@pytest.mark.parametrize("name", OLD_CLI)
def test_old_cli_names_run_the_tools(name):
    r = subprocess.run([sys.executable, "-m", name, "--help"], capture_output=True, text=True, env=ENV,
                       cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"python -m mjxmimic.tools.{name.rsplit('.', 1)[1]}" in r.stdout


def test_atomic_write_replaces_whole_or_nothing(tmp_path, monkeypatch):
    p = tmp_path / "sub" / "a.yaml"
    assert atomic_write(p, b"\x00old") == p and p.read_bytes() == b"\x00old"
    atomic_write(p, "new é")
    assert p.read_text(encoding="utf-8") == "new é" and (p.stat().st_mode & 0o777) == 0o644

    def boom(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, "half")
    assert p.read_text(encoding="utf-8") == "new é"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.yaml"]  # no temp file left behind


def test_frame_kinematics_is_mj_kinematics(k1):
    m = k1.model
    rng = np.random.default_rng(0)
    q = np.tile(k1.default_qpos, (3, 1))
    q[:, k1.qpos_idx] += rng.uniform(-0.3, 0.3, (3, k1.num_joints))
    q[:, 3:7] = [[np.cos(0.3), 0.0, np.sin(0.3), 0.0]]
    xpos, xquat = body_poses(m, q)
    gmat, ximat = frame_kinematics(m, q[1], ("geom_xmat", "ximat"))
    assert xpos.shape == (3, m.nbody, 3) and xquat.shape == (3, m.nbody, 4)
    assert gmat.shape == (1, m.ngeom, 3, 3) and ximat.shape == (1, m.nbody, 3, 3)
    d = mujoco.MjData(m)
    for i in range(3):
        d.qpos[:] = q[i]
        mujoco.mj_kinematics(m, d)
        np.testing.assert_array_equal(xpos[i], d.xpos)
        np.testing.assert_array_equal(xquat[i], d.xquat)
        if i == 1:
            np.testing.assert_array_equal(gmat[0], d.geom_xmat.reshape(-1, 3, 3))
            np.testing.assert_array_equal(ximat[0], d.ximat.reshape(-1, 3, 3))
    # root body at the root position, rotated by the root quaternion
    np.testing.assert_allclose(xpos[:, k1.root_body_id], q[:, :3], atol=1e-12)
