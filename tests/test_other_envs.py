"""MimicKit's other env kinds: static props (a robot dropped onto a box rests on it, in MJX and
MuJoCo C alike; malformed object lists), kinematic clip playback (qpos = the MotionLib's frame,
done at the clip's end) and the DoF test (every joint reaches both limits, the root never moves)."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from mjxmimic.envs import physics
from mjxmimic.envs.dof_test import SWEEP_KNOTS, sweep_target
from mjxmimic.envs.registry import ConfigError, load_config, make_env
from mjxmimic.envs.static_objects import PROPS_BODY
from mjxmimic.envs.view_motion import play_length
from mjxmimic.motions import lib as mlib
from mjxmimic.robots.geometry import geom_min_z
from mjxmimic.view import env_rollout, gl_backend_works, main as view_main

BOX = {"name": "box", "type": "box", "size": [0.3, 0.3, 0.15], "pos": [0.0, 0.0, 0.15]}   # top at z = 0.3


# ---------------------------------------------------------------------------------------
# static objects
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("objects, match", [
    ([{**BOX, "type": "cone"}], "type must be one of"),
    ([{**BOX, "size": [0.3, 0.3]}], "needs 3 positive size"),
    ([{**BOX, "size": [0.3, 0.3, -1.0]}], "needs 3 positive size"),
    ([{k: v for k, v in BOX.items() if k != "pos"}], "pos"),
    ([{**BOX, "colour": "red"}], "unknown key"),
    ([{**BOX, "friction": -1}], "friction"),
    (BOX, "expected a list"),
])
def test_malformed_objects_one_clear_error(objects, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_config("k1_vault", {"env.objects": objects})
    assert "env.objects" in str(e.value) and "\n" not in str(e.value)


def test_objects_rejected_at_build():
    with pytest.raises(ConfigError, match="unique"):
        make_env("k1_vault", {"env.objects": [BOX, BOX]})
    cyl = {"name": "post", "type": "cylinder", "size": [0.1, 0.3], "pos": [2.0, 0.0, 0.3]}
    with pytest.raises(ConfigError, match="use box, sphere or capsule"):
        make_env("k1_vault", {"env.objects": [cyl]})


@pytest.fixture(scope="module")
def box_env(k1):
    env, params, _ = make_env("k1_vault", {"env.objects": [BOX], "env.num_envs": 1})
    return env, params


def test_props_appended_after_the_robot(k1, box_env):
    env, _ = box_env
    m, rm = env.model, k1.model
    assert (m.nq, m.nv, m.nu, m.nbody, m.ngeom) == (rm.nq, rm.nv, rm.nu, rm.nbody + 1, rm.ngeom + 1)
    g = m.ngeom - 1
    assert m.geom(g).name == "box" and m.body(int(m.geom_bodyid[g])).name == PROPS_BODY
    assert m.body_weldid[m.geom_bodyid[g]] == 0          # static: welded to the world
    np.testing.assert_array_equal(m.geom_type[:rm.ngeom], rm.geom_type)
    # the box collides with every robot collision geom, not with the floor
    col = lambda a, b: bool((m.geom_contype[a] & m.geom_conaffinity[b]) | (m.geom_contype[b] & m.geom_conaffinity[a]))  # noqa: E731
    assert all(col(g, int(r)) for r in k1.collision_geom_ids)
    floor = [i for i in range(rm.ngeom) if m.geom_type[i] == mujoco.mjtGeom.mjGEOM_PLANE]
    assert not col(g, floor[0])


def test_robot_dropped_onto_box_rests_on_it_mjx_and_c(k1, box_env):
    """K1 in its standing pose, its soles 3 cm above the box top, holding the pose: it lands on
    the box and stays on it (MJX contacts with the box exist); MuJoCo C agrees."""
    env, params = box_env
    m = env.model
    top, n_ctrl = 0.3, 15
    q0 = env.full_state(jnp.asarray(k1.default_qpos, jnp.float32), jnp.zeros(m.nv))[0]
    sole = float(geom_min_z(m.geom_type[k1.foot_geom_ids], m.geom_size[k1.foot_geom_ids],
                            *_geom_pose(m, np.asarray(q0), k1.foot_geom_ids)).min())
    q0 = q0.at[2].add(top + 0.03 - sole)
    target = jnp.asarray(k1.default_qpos[k1.qpos_idx], jnp.float32)

    def run(q):
        d = physics.set_state(params.model, q, jnp.zeros(m.nv), ctrl=target)

        def body(d, _):
            d = physics.pd_step(params.model, d, target, env.num_substeps)
            return d, d.qpos
        return jax.lax.scan(body, d, None, length=n_ctrl)
    d_end, qs = jax.jit(run)(q0)
    qs = np.asarray(qs)
    box = m.ngeom - 1
    feet_z = [geom_min_z(m.geom_type[k1.foot_geom_ids], m.geom_size[k1.foot_geom_ids],
                         *_geom_pose(m, q, k1.foot_geom_ids)).min() for q in qs]
    assert min(feet_z) > top - 0.01                      # never through the box top
    assert abs(feet_z[-1] - top) < 0.01                  # resting on it, not floating
    dm = mjx.get_data(m, d_end)
    on_box = [i for i in range(dm.ncon) if box in dm.contact.geom[i]]
    assert on_box and np.all(dm.contact.dist[on_box] < 0.005)

    # MuJoCo C from the same state, same controls
    d = mujoco.MjData(m)
    d.qpos[:], d.ctrl[:] = np.asarray(q0), np.asarray(target)
    qc = []
    for _ in range(n_ctrl):
        mujoco.mj_step(m, d, env.num_substeps)
        qc.append(d.qpos.copy())
    np.testing.assert_allclose(qs[:, :3], np.array(qc)[:, :3], atol=5e-3)   # root position
    assert any(box in (int(d.contact.geom1[i]), int(d.contact.geom2[i])) for i in range(d.ncon))


def _geom_pose(m, qpos, geom_ids):
    d = mujoco.MjData(m)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(m, d)
    return d.geom_xpos[geom_ids], d.geom_xmat[geom_ids].reshape(-1, 3, 3)


# ---------------------------------------------------------------------------------------
# view motion
# ---------------------------------------------------------------------------------------
def test_play_length():
    np.testing.assert_allclose(play_length(jnp.array([0.8, 2.0]), jnp.array([True, False]), 5), [4.0, 2.0])


def test_view_motion_plays_the_clip_and_ends_with_it():
    """The frames ``view --env`` renders: the clip at t = n·dt, until the clip's 5th play ends."""
    env, qpos = env_rollout("k1_view_motion")
    lib = make_env("k1_view_motion", {"env.num_envs": 1})[1].motion
    assert bool(lib.wrap[0]) and float(lib.length[0]) == pytest.approx(0.8)   # 5 plays: 4 s, 120 steps
    n_end = int(round(5 * 0.8 / env.control_dt))
    assert env.max_episode_steps > n_end and len(qpos) == n_end    # done at step 120, not before or after
    steps = np.arange(n_end)
    f = mlib.sample(lib, jnp.zeros(n_end, jnp.int32), jnp.asarray(steps * env.control_dt, jnp.float32))
    np.testing.assert_allclose(qpos, np.asarray(f.qpos(lib)), atol=1e-5)
    assert np.abs(qpos[1:, 0] - qpos[:-1, 0]).max() > 0        # it moves (the walk advances)


def test_view_cli_arguments():
    for argv in (["--dof-test"], ["--env", "k1_dof_test", "motions/k1/walk.npz"], []):
        with pytest.raises(SystemExit) as e:
            view_main(argv)
        assert e.value.code == 2


# ---------------------------------------------------------------------------------------
# DoF test
# ---------------------------------------------------------------------------------------
def test_sweep_target_closed_form():
    lo, hi, rest = jnp.array([-1.0, 0.2, -0.5]), jnp.array([2.0, 1.0, 0.5]), jnp.array([0.0, 0.2, 0.0])
    T = 4.0
    at = lambda t: np.asarray(sweep_target(jnp.float32(t), lo, hi, rest, T))  # noqa: E731
    np.testing.assert_allclose(at(T + SWEEP_KNOTS[1] * T), [0.0, 0.2, 0.0], atol=1e-6)   # joint 1 at its lower
    np.testing.assert_allclose(at(0.1 * T), [-0.5, 0.2, 0.0], atol=1e-6)                # halfway 0 -> -1
    np.testing.assert_allclose(at(0.5 * T), [0.5, 0.2, 0.0], atol=1e-6)                 # halfway -1 -> 2
    np.testing.assert_allclose(at(0.75 * T), [2.0, 0.2, 0.0], atol=1e-6)                # holding the upper
    np.testing.assert_allclose(at(2 * T + 0.9 * T), [0.0, 0.2, 0.25], atol=1e-6)        # joint 2 on its way back
    np.testing.assert_allclose(at(3 * T), rest, atol=1e-6)                              # the end: all at rest


def test_dof_test_reaches_every_limit_root_fixed(k1):
    T = 2.0
    env, qpos = env_rollout("k1_dof_test", {"env.seconds_per_dof": T})
    n = round(k1.num_joints * T * 30)
    assert env.max_episode_steps == n and len(qpos) == n               # one sweep, no early end
    np.testing.assert_allclose(qpos[:, :7], np.broadcast_to(env.init_qpos[:7], (n, 7)), atol=1e-6)   # root pinned
    assert env.init_qpos[2] == pytest.approx(k1.default_qpos[2] + 0.3)
    q = qpos[:, k1.qpos_idx]
    per = int(round(T * 30))
    tol = 0.01                                  # measured: within 0.003 rad (K1, 2 s per joint)
    for j, (lo, hi) in enumerate(k1.joint_range):
        w = q[j * per:(j + 1) * per - 1, j]
        assert w.min() < lo + tol and w.max() > hi - tol, (k1.joint_names[j], w.min(), w.max(), lo, hi)


_PROPS_SCENE = """
import mujoco, numpy as np
from mjxmimic.envs.static_objects import ObjectConfig, build_props_model
from mjxmimic.robots import load_robot
from mjxmimic.view import make_renderer
robot = load_robot("k1")
m = build_props_model(robot, [ObjectConfig("vault_box", "box", (0.2, 0.5, 0.15), (1.0, 0.0, 0.15))])
d = mujoco.MjData(m)
d.qpos[: robot.model.nq] = robot.default_qpos
mujoco.mj_forward(m, d)
r = make_renderer(m, robot, 48, 64)
r.update_scene(d)
boxes = [g for g in (r.scene.geoms[i] for i in range(r.scene.ngeom)) if g.type == mujoco.mjtGeom.mjGEOM_BOX]
assert len(boxes) == 1 and np.allclose(boxes[0].pos, [1.0, 0.0, 0.15]) and np.allclose(boxes[0].size, [0.2, 0.5, 0.15])
r.close()
print("ok")
"""


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared/robots").is_dir(), reason="../shared not present")
@pytest.mark.filterwarnings("ignore:os.fork")
def test_static_props_are_drawn_with_the_meshes():
    """Videos draw the static props (the robot with its vendor meshes, its collision boxes hidden)."""
    backend = next((b for b in ("egl", "osmesa") if gl_backend_works(b)), None)
    if backend is None:
        pytest.skip("no headless OpenGL backend renders here")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MJXMIMIC_MESHES")}
    env.update(MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", _PROPS_SCENE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "ok", r.stderr[-2000:]
