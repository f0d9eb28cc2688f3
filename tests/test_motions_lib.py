"""Clip velocities and the MotionLib: interpolation, wrap/clamp, FK against MuJoCo C,
MJX FK, weighted sampling, jit/vmap."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.motions.clip import Clip
from mjxmimic.motions.lib import (build_motion_lib, load_motion_lib, motion_phase, sample, sample_mjx,
                                  sample_motions, sample_times)
from mjxmimic.tools.synthetic import synthetic_clip

SHARED = Path(__file__).resolve().parents[2] / "shared"
MK_G1 = SHARED / "motions" / "mimickit_g1"

FPS, T = 30.0, 31
V = np.array([0.5, -0.2, 0.1])       # root linear velocity
W = 1.5                              # yaw rate (rad/s)
JV = 2.0                             # joint 0 rate, crossing +-pi
TILT = np.array([np.cos(0.15), np.sin(0.15), 0.0, 0.0])  # fixed 0.3 rad roll


def _analytic(t, robot):
    t = np.asarray(t, float)
    pos = np.array([0.0, 0.0, 0.6]) + t[..., None] * V
    rot = np.asarray(rmath.quat_mul(rmath.yaw_quat(W * t), np.broadcast_to(TILT, t.shape + (4,))), float)
    j = np.tile(robot.default_joint_pos, t.shape + (1,)).astype(float)
    j[..., 0] = np.pi - 0.3 + JV * t          # unwrapped
    j[..., 1] = 0.2 * np.sin(2 * np.pi * t)   # smooth
    return pos, rot, j


def _clip(robot, loop="clamp"):
    t = np.arange(T) / FPS
    pos, rot, j = _analytic(t, robot)
    rot[10:16] *= -1.0                         # quaternion sign flip: same rotations
    j[:, 0] = np.asarray(rmath.wrap_angle(j[:, 0]))  # stored wrapped: jumps from +pi to -pi
    assert np.any(np.diff(j[:, 0]) < -6)
    return Clip(fps=FPS, loop=loop, root_pos=pos, root_rot=rot, joint_pos=j, joint_names=robot.joint_names,
                name=f"analytic_{loop}")


def _quat_close(a, b, atol):
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1))
    assert d.max() < atol, d.max()


@pytest.fixture(scope="module")
def lib(k1):
    # motion 0: analytic clamp clip, 1: the same wrapped, 2: a short synthetic one
    clips = [_clip(k1, "clamp"), _clip(k1, "wrap"), synthetic_clip(k1, frames=7, fps=10.0, loop="wrap", speed=1.0)]
    # the wrapped ones are not periodic (they test the wrap arithmetic): their seam warning is expected
    with pytest.warns(UserWarning, match="loops, but its last frame"):
        return build_motion_lib(clips, k1, weights=[3.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def g1_lib(g1):
    clip = synthetic_clip(g1, frames=31, fps=30.0, loop="wrap", speed=0.6, yaw_rate=0.8, amp=0.4, freq=1.0)
    return clip, build_motion_lib([clip], g1)


# ----------------------------------------------------------------------------- velocities
def test_finite_difference_velocities_vs_analytic(k1):
    c = _clip(k1)
    v, w, jv = c.velocities()
    np.testing.assert_allclose(v, np.tile(V, (T, 1)), atol=1e-9)
    # angular velocity is world-frame: a yaw rate on top of a fixed tilt is (0, 0, W)
    # at every frame, the sign-flipped ones included
    np.testing.assert_allclose(w, np.tile([0, 0, W], (T, 1)), atol=2e-5)
    # the joint crossing +-pi moves at JV, not at -2pi*fps
    np.testing.assert_allclose(jv[:, 0], JV, atol=1e-4)
    # a smooth joint: the forward difference is the derivative at the interval midpoint, O(dt^2)
    tm = (np.arange(T - 1) + 0.5) / FPS
    np.testing.assert_allclose(jv[:-1, 1], 0.2 * 2 * np.pi * np.cos(2 * np.pi * tm), atol=0.2 * 2 * np.pi * 0.015)
    # clamp: the last frame repeats the one before
    np.testing.assert_allclose(jv[-1], jv[-2])


# ----------------------------------------------------------------------------- interpolation
def test_sample_at_frames_and_midframes(lib, k1):
    k = np.arange(T - 1)
    for times, frac in ((k / FPS, 0.0), ((k + 0.5) / FPS, 0.5), ((k + 0.25) / FPS, 0.25)):
        f = sample(lib, jnp.zeros(len(k), jnp.int32), jnp.asarray(times))
        pos, rot, j = _analytic(times, k1)
        np.testing.assert_allclose(f.root_pos, pos, atol=1e-5)
        _quat_close(f.root_rot, rot, 1e-5)     # slerp of a constant-rate rotation is exact
        np.testing.assert_allclose(rmath.wrap_angle(f.joint_pos[:, 0] - j[:, 0]), 0.0, atol=1e-5)  # shortest way
        np.testing.assert_allclose(f.root_vel, np.tile(V, (len(k), 1)), atol=1e-4)
        np.testing.assert_allclose(f.root_ang_vel, np.tile([0, 0, W], (len(k), 1)), atol=1e-4)
        np.testing.assert_allclose(f.joint_vel[:, 0], JV, atol=1e-3)
        # the smooth joint: exact at frames, linear in between
        c = _clip(k1)
        lin = (1 - frac) * c.joint_pos[k, 1] + frac * c.joint_pos[k + 1, 1]
        np.testing.assert_allclose(f.joint_pos[:, 1], lin, atol=1e-6)


def test_velocity_is_derivative_of_interpolation(lib):
    t = jnp.asarray([0.11, 0.42, 0.73])
    ids = jnp.array([2, 2, 2])
    eps = 1e-3
    a, b = sample(lib, ids, t), sample(lib, ids, t + eps)
    np.testing.assert_allclose((b.root_pos - a.root_pos) / eps, a.root_vel, atol=2e-2)
    np.testing.assert_allclose((b.joint_pos - a.joint_pos) / eps, a.joint_vel, atol=2e-2)


def test_wrap_vs_clamp(lib, k1):
    L = (T - 1) / FPS
    t = jnp.asarray([0.1, 0.37, 0.8])
    base = sample(lib, jnp.ones(3, jnp.int32), t)
    for cycles in (1, 2, -1):
        f = sample(lib, jnp.ones(3, jnp.int32), t + cycles * L)
        shift = cycles * np.array([V[0] * L, V[1] * L, 0.0])   # xy of last-first, z not accumulated
        np.testing.assert_allclose(f.root_pos, np.asarray(base.root_pos) + shift, atol=2e-5)
        np.testing.assert_allclose(f.body_pos[:, 1:], np.asarray(base.body_pos[:, 1:]) + shift, atol=2e-5)
        _quat_close(f.root_rot, base.root_rot, 1e-5)
        np.testing.assert_allclose(f.joint_pos, base.joint_pos, atol=1e-5)
    np.testing.assert_allclose(motion_phase(lib, jnp.ones(3, jnp.int32), t + 2 * L), t / L, atol=1e-5)
    # clamp holds the end frames outside [0, L]
    c = _clip(k1)
    f = sample(lib, jnp.zeros(3, jnp.int32), jnp.asarray([-1.0, L + 0.01, 10 * L]))
    np.testing.assert_allclose(f.root_pos, c.root_pos[[0, -1, -1]], atol=1e-5)
    np.testing.assert_allclose(f.joint_pos[:, 1], c.joint_pos[[0, -1, -1], 1], atol=1e-6)
    np.testing.assert_allclose(motion_phase(lib, jnp.zeros(3, jnp.int32), jnp.asarray([-1.0, L, 10 * L])), [0, 1, 1])


def test_motion_ids_select_their_clip(lib, k1):
    short = synthetic_clip(k1, frames=7, fps=10.0, loop="wrap", speed=1.0)
    f = sample(lib, jnp.array([2, 2, 0]), jnp.array([0.1, 0.3, 0.1]))
    np.testing.assert_allclose(f.root_pos[:2], short.root_pos[[1, 3]], atol=1e-6)
    np.testing.assert_allclose(f.joint_pos[:2], short.joint_pos[[1, 3]], atol=1e-6)
    np.testing.assert_allclose(f.root_pos[2], _analytic(np.array(0.1), k1)[0], atol=1e-5)


# ----------------------------------------------------------------------------- body FK
def test_body_poses_match_mujoco_c(g1, g1_lib):
    clip, lib = g1_lib
    qpos = clip.qpos(g1)
    f = sample(lib, jnp.zeros(T - 1, jnp.int32), jnp.arange(T - 1) / FPS)
    for i in range(0, T - 1, 5):
        d = g1.kinematics(qpos[i])
        np.testing.assert_allclose(f.body_pos[i], d.xpos, atol=2e-5)
        _quat_close(f.body_rot[i], d.xquat, 2e-5)
    # Between frames the precomputed path interpolates body poses. Against exact FK of the
    # interpolated pose, near mid-frames of this fast motion (joints up to ~7 rad/s) at 30 fps:
    # ~1.9 cm worst body; upsampling the FK grid 4x at load cuts it ~16x (times chosen off
    # the fine grid).
    t = jnp.asarray((np.arange(T - 1) + 0.45) / FPS)

    def worst(lb):
        f = sample(lb, jnp.zeros(T - 1, jnp.int32), t)
        q = np.asarray(f.qpos(lb), float)
        return max(np.linalg.norm(np.asarray(f.body_pos[i]) - g1.kinematics(q[i]).xpos, axis=-1).max()
                   for i in range(T - 1)), f

    err, f = worst(lib)
    assert 0.002 < err < 0.025, err
    err4, f4 = worst(build_motion_lib([clip], g1, fk_min_fps=120.0))
    assert err4 < err / 8, (err, err4)
    np.testing.assert_allclose(f4.joint_pos, f.joint_pos, atol=1e-5)   # same reference otherwise
    np.testing.assert_allclose(f4.root_pos, f.root_pos, atol=1e-5)
    np.testing.assert_allclose(f4.joint_vel, f.joint_vel, atol=1e-3)


def test_sample_mjx_matches_mujoco_c(g1, g1_lib):
    _, lib = g1_lib
    t = jnp.asarray([0.0, 0.123, 0.5, 0.77, 1.3])
    ids = jnp.zeros(5, jnp.int32)
    f = sample_mjx(lib, g1.mjx_model(), ids, t)
    ref = sample(lib, ids, t)
    np.testing.assert_allclose(f.joint_pos, ref.joint_pos)
    q = np.asarray(f.qpos(lib), float)
    for i in range(5):
        d = g1.kinematics(q[i])
        np.testing.assert_allclose(f.body_pos[i], d.xpos, atol=1e-4)
        _quat_close(f.body_rot[i], d.xquat, 1e-4)


# ----------------------------------------------------------------------------- sampling
def test_weighted_sampling_and_times(lib):
    ids = np.asarray(sample_motions(lib, jax.random.PRNGKey(0), 20000))
    freq = np.bincount(ids, minlength=3) / len(ids)
    np.testing.assert_allclose(freq, [0.75, 0.25, 0.0], atol=0.015)
    ids = jnp.array([0, 1, 2] * 1000)
    t = np.asarray(sample_times(lib, jax.random.PRNGKey(1), ids, truncate=0.5))
    L = np.asarray(lib.length)[np.asarray(ids)]
    assert np.all(t >= 0) and np.all(t <= np.maximum(L - 0.5, 0) + 1e-6)
    assert t[np.asarray(ids) == 0].max() > 0.9 * (L[0] - 0.5)   # covers the range
    assert np.all(t[np.asarray(ids) == 2] <= 0.1 + 1e-6)         # 0.6 s clip: [0, 0.1]


def test_jit_vmap_and_batch_shapes(lib):
    ids = jnp.array([[0, 1], [2, 1]])
    t = jnp.array([[0.2, 1.7], [0.05, 0.33]])
    f = sample(lib, ids, t)
    assert f.body_pos.shape == (2, 2, lib.body_pos.shape[1], 3) and f.joint_pos.shape == (2, 2, 22)
    g = jax.jit(jax.vmap(lambda i, s: sample(lib, i, s)))(ids.reshape(-1), t.reshape(-1))
    for a, b in zip(jax.tree_util.tree_leaves(f), jax.tree_util.tree_leaves(g)):
        np.testing.assert_allclose(np.asarray(a).reshape(np.asarray(b).shape), b, atol=1e-6)
    # qpos/qvel: the free joint's angular velocity is local
    qv = f.qvel(lib)
    np.testing.assert_allclose(qv[..., 3:6], rmath.quat_rotate_inv(f.root_rot, f.root_ang_vel), atol=1e-6)
    assert f.qpos(lib).shape == (2, 2, 29)


@pytest.mark.skipif(not MK_G1.exists(), reason=f"{MK_G1} not present")
def test_real_dataset_lib(tmp_path):
    y = tmp_path / "g1.yaml"
    y.write_text("motions:\n" + "".join(f"  - {{file: {MK_G1 / n}.pkl, weight: {w}}}\n"
                                        for n, w in (("g1_walk", 2), ("g1_run", 1), ("g1_spinkick", 1))))
    lib = load_motion_lib(y, "g1")
    assert lib.num_motions == 3 and lib.total_frames == 125 + 25 + 78
    np.testing.assert_allclose(lib.weights, [0.5, 0.25, 0.25])
    np.testing.assert_allclose(lib.length, [124 / 120, 24 / 30, 77 / 60], rtol=1e-6)
    f = sample(lib, jnp.array([0, 1, 2]), jnp.array([0.5, 0.5, 0.5]))
    assert np.all(np.isfinite(np.asarray(f.body_pos)))
    assert np.all(np.asarray(f.root_pos[:, 2]) > 0.5)


def test_a_looping_clip_with_a_seam_warns_at_load(k1):
    """A loop whose last frame is not its first makes the reference jump once per cycle (the K1
    spin kick's 0.6 rad seam kept it from being learned): building a library says so; a closed
    loop, a small gap and a clamped clip do not."""
    import warnings

    from mjxmimic.tools.clean import close_loop
    c = synthetic_clip(k1, frames=31, fps=30.0, loop="wrap", amp=0.1, freq=1.0)
    knee = k1.joint_names.index("Left_Knee_Pitch")
    jp = c.joint_pos.copy()
    jp[-1, knee] += 0.5
    bad = c.replace(joint_pos=jp, name="seamy")
    assert bad.seam_joint_gap() == (pytest.approx(0.5, abs=1e-6), "Left_Knee_Pitch")
    with pytest.warns(UserWarning, match=r"seamy.*0\.50 rad.*Left_Knee_Pitch.*tools\.clean"):
        build_motion_lib([bad], k1)
    jp[-1, knee] = c.joint_pos[-1, knee] + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_motion_lib([close_loop(bad, 0.2), c.replace(joint_pos=jp), bad.replace(loop="clamp")], k1)
