"""Viewer: headless mp4 through the automatically picked GL backend, with the vendor meshes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest

from mjxmimic import view
from mjxmimic.motions.io import save_clip
from mjxmimic.robots import load_robot
from mjxmimic.tools.synthetic import synthetic_clip
from mjxmimic.robots.visual import COLLISION_GROUP, MESH_GROUP, MESHES_ENV, MeshError, find_meshes, visual_model

SHARED_ROBOTS = Path(__file__).resolve().parents[2] / "shared" / "robots"
K1_MESHES = SHARED_ROBOTS / "booster_k1" / "meshes"
needs_meshes = pytest.mark.skipif(not K1_MESHES.is_dir(), reason=f"{K1_MESHES} not present (../shared beside the repo)")

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


@needs_meshes
@pytest.mark.parametrize("name", ["k1", "g1"])
def test_visual_model_has_the_simulated_layout(name, monkeypatch):
    monkeypatch.delenv(MESHES_ENV, raising=False)
    robot = load_robot(name)
    mesh_dir, why = find_meshes(robot)
    assert mesh_dir is not None, why
    sim, vis = robot.model, visual_model(name, mesh_dir)
    assert (vis.nq, vis.nv, vis.nu, vis.nbody) == (sim.nq, sim.nv, sim.nu, sim.nbody)
    assert [vis.body(i).name for i in range(vis.nbody)] == list(robot.body_names)
    rng = np.random.default_rng(0)
    for _ in range(3):
        q = robot.default_qpos.copy()
        q[:3] += rng.normal(size=3)
        q[3:7] = rng.normal(size=4)
        q[3:7] /= np.linalg.norm(q[3:7])
        lo, hi = robot.joint_range.T
        q[robot.qpos_idx] = rng.uniform(lo, hi)
        ds, dv = mujoco.MjData(sim), mujoco.MjData(vis)
        ds.qpos[:] = dv.qpos[:] = q
        mujoco.mj_kinematics(sim, ds)
        mujoco.mj_kinematics(vis, dv)
        # the shipped MJCF stores numbers to ~7 digits; the in-memory build keeps the URDF's
        np.testing.assert_allclose(dv.xpos, ds.xpos, atol=2e-6)
        np.testing.assert_allclose(dv.xmat, ds.xmat, atol=2e-6)
    # meshes are visual only; the primitives are hidden in a default render
    mesh = vis.geom_type == mujoco.mjtGeom.mjGEOM_MESH
    assert mesh.sum() >= 10
    assert (vis.geom_contype[mesh] == 0).all() and (vis.geom_conaffinity[mesh] == 0).all()
    assert (vis.geom_group[mesh] == MESH_GROUP).all()
    robot_prims = ~mesh & (vis.geom_bodyid > 0)
    assert robot_prims.sum() == len(robot.collision_geom_ids)
    assert (vis.geom_group[robot_prims] == COLLISION_GROUP).all()
    scn = mujoco.MjvScene(vis, maxgeom=1000)
    dv = mujoco.MjData(vis)
    dv.qpos[:] = robot.default_qpos
    mujoco.mj_forward(vis, dv)
    mujoco.mjv_updateScene(vis, dv, mujoco.MjvOption(), None, mujoco.MjvCamera(), mujoco.mjtCatBit.mjCAT_ALL, scn)
    drawn = [scn.geoms[i] for i in range(scn.ngeom) if scn.geoms[i].objtype == mujoco.mjtObj.mjOBJ_GEOM]
    assert sum(vis.geom_type[g.objid] == mujoco.mjtGeom.mjGEOM_MESH for g in drawn) == mesh.sum()
    assert not any(robot_prims[g.objid] for g in drawn)


@needs_meshes
def test_find_meshes_precedence(k1, tmp_path, monkeypatch):
    monkeypatch.delenv(MESHES_ENV, raising=False)
    assert find_meshes(k1)[0].resolve() == K1_MESHES.resolve()    # ../shared beside the checkout
    monkeypatch.setenv(MESHES_ENV, str(SHARED_ROBOTS))              # a folder of vendor folders
    assert find_meshes(k1)[0].resolve() == K1_MESHES.resolve()
    assert find_meshes(k1, "none") == (None, "--meshes=none")       # the flag wins over the env var
    monkeypatch.setenv(MESHES_ENV, str(tmp_path))                    # empty: an error, not a silent fallback
    with pytest.raises(MeshError, match=MESHES_ENV):
        find_meshes(k1)
    assert find_meshes(k1, K1_MESHES)[0].resolve() == K1_MESHES.resolve()
    with pytest.raises(MeshError, match="--meshes"):
        find_meshes(k1, tmp_path / "nope")


def test_default_out_beside_the_clip_or_under_runs(tmp_path):
    from mjxmimic.paths import REPO_ROOT
    assert view.default_out(tmp_path / "walk.npz") == tmp_path / "walk.mp4"
    packaged = view.default_out(REPO_ROOT / "motions" / "k1" / "walk.npz")
    assert packaged.parent == REPO_ROOT / "runs" / "view" and packaged.name == "walk.mp4"


_BALL_SCENE = """
import numpy as np, mujoco
from mjxmimic.envs.scene import build_ball_scene
from mjxmimic.robots import load_robot
from mjxmimic.view import MeshRenderer, make_renderer
robot = load_robot("k1")
scene = build_ball_scene(robot)
m = scene.model
d = mujoco.MjData(m)
d.qpos[:] = scene.default_qpos
mujoco.mj_forward(m, d)
r = make_renderer(m, robot, 48, 64)
assert isinstance(r, MeshRenderer), type(r)
r.update_scene(d)
g = [r.scene.geoms[i] for i in range(r.scene.ngeom)]
T = mujoco.mjtGeom
spheres = [x for x in g if x.type == T.mjGEOM_SPHERE]
assert len(spheres) == 1 and abs(spheres[0].size[0] - scene.config.radius) < 1e-9, spheres
assert np.allclose(spheres[0].pos, d.xpos[scene.ball_body_id])
assert sum(x.type == T.mjGEOM_MESH for x in g) >= 10
assert not any(x.type in (T.mjGEOM_CAPSULE, T.mjGEOM_BOX) for x in g)
assert r.render().shape == (48, 64, 3)
r.close()
print("ok")
"""


@needs_meshes
def test_mesh_renderer_draws_the_scene_objects(backend):
    """The ball scene renders with the robot's meshes, the ball, and no collision primitives."""
    env = dict(_env(), MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    env.pop(MESHES_ENV, None)
    r = subprocess.run([sys.executable, "-c", _BALL_SCENE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    assert "collision primitives" not in r.stderr


def test_cli_writes_beside_the_clip_without_meshes(backend, tmp_path):
    k1 = load_robot("k1")
    a = save_clip(synthetic_clip(k1, frames=5, fps=20.0, name="a"), tmp_path / "a.npz")
    r = subprocess.run([sys.executable, "-m", "mjxmimic.view", str(a), "--robot", "k1", "--meshes", "none",
                        "--width", "64", "--height", "48"], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "a.mp4").exists() and str(tmp_path / "a.mp4") in r.stdout
    assert "collision primitives" not in r.stderr                 # asked for: no note
    assert "warp" not in r.stdout + r.stderr


def test_cli_bad_meshes_folder_is_one_error(tmp_path):
    out = tmp_path / "v.mp4"
    a = save_clip(synthetic_clip(load_robot("k1"), frames=5, fps=20.0, name="a"), tmp_path / "a.npz")
    r = subprocess.run([sys.executable, "-m", "mjxmimic.view", str(a), "--robot", "k1", "--meshes", str(tmp_path),
                        "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode in (2, 3), r.stderr[-2000:]
    if r.returncode == 2:
        assert r.stderr.strip().startswith("error: --meshes") and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
