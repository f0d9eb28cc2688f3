"""DeepMimic env tests on G1 (CPU): reward/obs/termination functions against hand-computed
values, a character on its reference, and the jitted vmapped env (8 envs, compiled once)."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.char import TERM_METRICS
from mjxmimic.envs.deepmimic import (REWARD_TERMS, TRACKING_METRICS, DeepMimicConfig, DeepMimicEnv,
                                     compute_phase_obs, compute_pose_fail, compute_reward, compute_tar_obs)
from mjxmimic.motions.io import load_clip
from mjxmimic.motions.lib import build_motion_lib, sample

from clips import synth_clip

N = 8
REAL_WALK = Path(__file__).resolve().parents[2] / "shared" / "motions" / "mimickit_g1" / "g1_walk.pkl"


def commit(tree):
    """jit caches committed and uncommitted inputs separately: commit hand-edited states."""
    return jax.device_put(tree, jax.devices()[0])


@pytest.fixture(scope="module")
def lib(g1):
    walk = load_clip(REAL_WALK, g1) if REAL_WALK.exists() else synth_clip(g1, "wrap", name="walk")
    return build_motion_lib([walk, synth_clip(g1, "clamp", seconds=1.0, name="clamped")], g1, weights=[3.0, 1.0])


@pytest.fixture(scope="module")
def env(g1):
    return DeepMimicEnv(DeepMimicConfig(robot="g1", joint_err_w=tuple(np.linspace(0.5, 1.0, 29))), robot=g1)


@pytest.fixture(scope="module")
def params(env, lib):
    return env.default_params(lib)


@pytest.fixture(scope="module")
def fns(env):
    return (jax.jit(jax.vmap(env.reset, in_axes=(None, 0))),
            jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0))))


@pytest.fixture(scope="module")
def state0(fns, params):
    return fns[0](params, jax.random.split(jax.random.PRNGKey(0), N))


@pytest.fixture(scope="module")
def evaluate_q(env):
    """evaluate() of the state (qpos, qvel) with kinematics recomputed, vmapped."""
    def f(params, qpos, qvel, info):
        return env.evaluate(params, physics.set_state(params.model, qpos, qvel), info)
    return jax.jit(jax.vmap(f, in_axes=(None, 0, 0, 0)))


def _ref_targets(env, params, state):
    """PD targets = the reference joint angles one control step ahead."""
    t = env.motion_time(state.info) + env.control_dt
    return sample(params.motion, state.info["motion_id"], t).joint_pos


# --------------------------------------------------------------------------------- pure functions
def test_phase_obs_values():
    o = compute_phase_obs(jnp.float32(0.25), 2)
    np.testing.assert_allclose(o, [0.25, 1.0, 0.0, 0.0, -1.0], atol=1e-6)
    assert compute_phase_obs(jnp.float32(0.3), 0).shape == (1,)


def _quat_z(a):
    return rmath.yaw_quat(jnp.float32(a))


def test_reward_terms_hand_computed():
    axes = jnp.array([[0.0, 1, 0], [1.0, 0, 0]])
    jr = rmath.quat_from_axis_angle(axes, jnp.array([0.3, -0.2]))
    tjr = rmath.quat_from_axis_angle(axes, jnp.array([0.4, 0.0]))            # diffs 0.1, 0.2
    w = jnp.array([1.0, 0.5])
    zero, one = jnp.zeros(3), jnp.array([1.0, 0, 0, 0])
    key = jnp.array([[0.2, 0.1, 0.5]])
    args = dict(root_pos=jnp.array([1.0, 2.0, 0.7]), root_rot=one, root_vel=jnp.array([0.5, 0, 0]),
                root_ang_vel=zero, joint_rot=jr, dof_vel=jnp.array([0.0, 1.0]), key_pos=key + jnp.array([1.0, 2.0, 0.7]),
                tar_root_pos=jnp.array([1.1, 2.0, 0.75]), tar_root_rot=_quat_z(0.2), tar_root_vel=zero,
                tar_root_ang_vel=jnp.array([0.0, 0, 1.0]), tar_joint_rot=tjr, tar_dof_vel=jnp.array([1.0, 3.0]),
                tar_key_pos=key + jnp.array([0.1, 0, 0]) + jnp.array([1.1, 2.0, 0.75]),
                joint_err_w=w, dof_err_w=w, track_root_h=True, track_root=True,
                w=(0.5, 0.1, 0.15, 0.1, 0.15), s=(0.25, 0.01, 5.0, 1.0, 10.0))
    r, terms, errs = compute_reward(**args)
    e = {"pose": 0.01 + 0.5 * 0.04, "vel": 1.0 + 0.5 * 4.0, "root_pose": 0.01 + 0.0025 + 0.1 * 0.04,
         "root_vel": 0.25 + 0.1 * 1.0, "key_pos": 0.01}
    for k in REWARD_TERMS:
        assert float(errs[k]) == pytest.approx(e[k], rel=1e-4), k
    s = dict(zip(REWARD_TERMS, (0.25, 0.01, 5.0, 1.0, 10.0)))
    wt = dict(zip(REWARD_TERMS, (0.5, 0.1, 0.15, 0.1, 0.15)))
    for k in REWARD_TERMS:
        assert float(terms[k]) == pytest.approx(np.exp(-s[k] * e[k]), rel=1e-4), k
    assert float(r) == pytest.approx(sum(wt[k] * np.exp(-s[k] * e[k]) for k in REWARD_TERMS), rel=1e-4)

    # Without root tracking: xy dropped, root rotation/velocities compared in each one's heading
    # frame (the pure 0.2 rad yaw difference vanishes), height kept when track_root_h.
    r2, _, errs2 = compute_reward(**{**args, "track_root": False})
    assert float(errs2["root_pose"]) == pytest.approx(0.0025, rel=1e-3)
    yawed = rmath.quat_rotate(_quat_z(-0.2), jnp.array([0.0, 0, 1.0]))  # target ang vel in its heading frame
    assert float(errs2["root_vel"]) == pytest.approx(0.25 + 0.1 * float(jnp.sum(yawed ** 2)), rel=1e-4)
    key_local = rmath.quat_rotate(_quat_z(-0.2), key[0] + jnp.array([0.1, 0, 0]))
    assert float(errs2["key_pos"]) == pytest.approx(float(jnp.sum((key_local - key[0]) ** 2)), rel=1e-4)
    _, _, errs3 = compute_reward(**{**args, "track_root": False, "track_root_h": False})
    assert float(errs3["root_pose"]) == pytest.approx(0.0, abs=1e-7)


def test_tar_obs_layout_and_heading_invariance():
    rng = np.random.default_rng(0)
    S, J, K = 3, 4, 2
    ref_pos, ref_rot = jnp.asarray(rng.normal(size=3), jnp.float32), rmath.normalize(jnp.asarray(rng.normal(size=4)))
    tp = jnp.asarray(rng.normal(size=(S, 3)), jnp.float32)
    tr = rmath.normalize(jnp.asarray(rng.normal(size=(S, 4)), jnp.float32))
    tj = rmath.normalize(jnp.asarray(rng.normal(size=(S, J, 4)), jnp.float32))
    tk = jnp.asarray(rng.normal(size=(S, K, 3)), jnp.float32)
    for glob in (False, True):
        o = compute_tar_obs(ref_pos, ref_rot, tp, tr, tj, tk, glob, True)
        assert o.shape == (S * (3 + 6 + 6 * J + 3 * K),)
        assert float(o[2]) == pytest.approx(float(tp[0, 2]))  # absolute target height
    assert compute_tar_obs(ref_pos, ref_rot, tp, tr, tj, tk, False, False).shape == (S * (2 + 6 + 6 * J + 3 * K),)
    np.testing.assert_allclose(compute_tar_obs(ref_pos, ref_rot, tp, tr, tj, tk, True, True)[:2], tp[0, :2] - ref_pos[:2],
                               rtol=1e-6)
    # rotate the world (and everything in it) about z: local obs unchanged, global obs change
    rz = _quat_z(0.9)
    rot_args = (rmath.quat_rotate(rz, ref_pos), rmath.quat_mul(rz, ref_rot), rmath.quat_rotate(rz, tp),
                rmath.quat_mul(rz, tr), tj, rmath.quat_rotate(rz, tk))
    np.testing.assert_allclose(compute_tar_obs(ref_pos, ref_rot, tp, tr, tj, tk, False, True),
                               compute_tar_obs(*rot_args, False, True), atol=1e-5)
    assert float(jnp.max(jnp.abs(compute_tar_obs(ref_pos, ref_rot, tp, tr, tj, tk, True, True)
                                 - compute_tar_obs(*rot_args, True, True)))) > 0.1


def test_pose_fail_branches():
    one = jnp.array([1.0, 0, 0, 0])
    body = jnp.array([[0.0, 0.0, -0.5], [0.8, 0, 0]])
    root = jnp.array([0.0, 0.0, 0.8])

    def fail(dbody, droot=jnp.zeros(3), troot_rot=one, glob=True, track=True):
        return bool(compute_pose_fail(root, one, root + body, root + droot, troot_rot, root + droot + body + dbody,
                                      1.0, glob, track))

    assert not fail(jnp.array([[0.0, 0.9, 0], [0, 0, 0]]))
    assert fail(jnp.array([[0.0, 1.1, 0], [0, 0, 0]]))
    assert fail(jnp.zeros((2, 3)), droot=jnp.array([1.5, 0, 0]))          # root off its reference (tracked)
    assert not fail(jnp.zeros((2, 3)), droot=jnp.array([1.5, 0, 0]), track=False)  # relative only
    # local: bodies in the root frame, so a rotated reference root with the same local pose is fine
    rz = _quat_z(2.0)
    assert not bool(compute_pose_fail(root, one, root + body, root, rz, root + rmath.quat_rotate(rz, body), 1.0,
                                      False, False))
    assert bool(compute_pose_fail(root, one, root + body, root, rz, root + rmath.quat_rotate(rz, body), 1.0,
                                  True, False))


# --------------------------------------------------------------------------------- env
def test_obs_size_and_layout(env, params, g1, lib):
    J, K = 29, 5
    char = 1 + 6 + 3 + 3 + 6 * J + J + 3 * K
    assert env.obs_size == char + 3 * (3 + 6 + 6 * J + 3 * K) == 825
    s = jax.eval_shape(env.reset, params, jax.random.PRNGKey(0))
    assert s.obs.shape == s.terminal_obs.shape == (825,)
    assert set(s.metrics) == set(TRACKING_METRICS) | {f"r_{k}" for k in REWARD_TERMS} | set(TERM_METRICS)
    e2 = DeepMimicEnv(DeepMimicConfig(robot="g1", enable_phase_obs=True, num_phase_encoding=4, global_obs=False,
                                      root_height_obs=False, tar_obs_steps=(1, 4)), robot=g1)
    size2 = char - 1 + 9 + 2 * (2 + 6 + 6 * J + 3 * K)
    assert e2.obs_size == size2
    assert jax.eval_shape(e2.reset, e2.default_params(lib), jax.random.PRNGKey(0)).obs.shape == (size2,)


def test_reset_obs_targets(env, params, state0):
    """Target block of the reset obs: frame k is the reference k control steps ahead."""
    char = env.char_obs_size()
    per = 3 + 6 + 6 * 29 + 15
    t = env.motion_time(state0.info)
    for k in (1, 2, 3):
        f = sample(params.motion, state0.info["motion_id"], t + k * env.control_dt)
        blk = state0.obs[:, char + (k - 1) * per: char + k * per]
        np.testing.assert_allclose(blk[:, 2], f.root_pos[:, 2], atol=1e-5)                  # absolute height
        np.testing.assert_allclose(blk[:, :2], f.root_pos[:, :2] - state0.physics.qpos[:, :2], atol=1e-5)
        np.testing.assert_allclose(blk[:, 3:9], rmath.quat_to_tan_norm(f.root_rot), atol=1e-5)


def test_character_on_reference_gets_full_reward(evaluate_q, params, state0, env):
    obs, r, failed, succ, m = evaluate_q(params, state0.physics.qpos, state0.physics.qvel, state0.info)
    np.testing.assert_allclose(obs, state0.obs, atol=1e-5)
    np.testing.assert_allclose(r, 1.0, atol=1e-3)
    for k in TRACKING_METRICS:
        assert float(jnp.max(m[k])) < 2e-3, k  # body arrays: interpolated FK vs FK of the pose
    for k in ("root_pos_err", "root_rot_err", "joint_pos_err", "dof_vel_err", "root_vel_err"):
        assert float(jnp.max(m[k])) < 1e-5, k
    assert not np.any(failed) and not np.any(succ)


def test_tracking_errors_measure_offsets(evaluate_q, params, state0, env, g1):
    j = g1.joint_names.index("left_elbow_joint")
    qpos = state0.physics.qpos.at[:, g1.qpos_idx[j]].add(0.3)
    qvel = state0.physics.qvel.at[:, g1.qvel_idx[j]].add(2.0)
    _, r, _, _, m = evaluate_q(params, qpos, qvel, state0.info)
    w = float(params.joint_err_w[j])
    np.testing.assert_allclose(m["joint_pos_err"], 0.3 / 29, rtol=1e-3)
    np.testing.assert_allclose(m["dof_vel_err"], 2.0 / 29, rtol=1e-3)
    np.testing.assert_allclose(m["r_pose"], np.exp(-0.25 * w * 0.09), rtol=1e-3)
    np.testing.assert_allclose(m["r_vel"], np.exp(-0.01 * w * 4.0), rtol=1e-3)
    assert np.all(m["key_pos_err"] > 1e-3) and np.all(m["body_rot_err"] > 1e-3)  # the wrist moved
    np.testing.assert_allclose(m["root_pos_err"], 0.0, atol=1e-6)
    assert np.all(r < 0.999)
    # 1.5 m root offset: pose termination (root tracked globally), but never on the first step
    shifted = state0.physics.qpos.at[:, 0].add(1.5)
    for step, expect in ((1, False), (5, True)):
        info = {**state0.info, "step": jnp.full((N,), step, jnp.int32)}
        _, _, failed, _, _ = evaluate_q(params, shifted, state0.physics.qvel, info)
        assert np.all(np.asarray(failed) == expect), step
    info = {**state0.info, "step": jnp.full((N,), 5, jnp.int32)}
    _, _, failed, _, _ = evaluate_q(params, state0.physics.qpos.at[:, 0].add(0.5), state0.physics.qvel, info)
    assert not np.any(failed)


def test_multi_clip_weighted_reset(env, params):
    ids = jax.jit(jax.vmap(lambda k: env.initial_state(params, k)[2]["motion_id"]))(
        jax.random.split(jax.random.PRNGKey(1), 2000))
    assert np.mean(np.asarray(ids) == 0) == pytest.approx(0.75, abs=0.04)  # weights 3:1


def test_vmapped_step_8_envs_tracks_reference(fns, params, env, state0):
    _, step = fns
    s = state0
    rewards = []
    for _ in range(10):
        s = step(params, s, _ref_targets(env, params, s))
        rewards.append(np.asarray(s.reward))
    rewards = np.stack(rewards)
    assert s.obs.shape == (N, 825) and np.all(np.isfinite(s.obs))
    assert np.all((rewards > 0) & (rewards <= 1.0)) and rewards.mean() > 0.4
    assert set(s.metrics) == set(TRACKING_METRICS) | {f"r_{k}" for k in REWARD_TERMS} | set(TERM_METRICS)
    assert all(np.all(np.isfinite(v)) for v in s.metrics.values())


def test_terminations(fns, params, env, state0, g1, lib):
    _, step = fns
    a = _ref_targets(env, params, state0)
    # timeout: truncated (bootstrapped). The motion time stays that of the state (start
    # offset moved back by the elapsed time), away from the end of the clamped clip.
    last = env.max_episode_steps - 1
    t0 = jnp.minimum(state0.info["motion_time0"], lib.length[state0.info["motion_id"]] - 2 * env.control_dt)
    s = commit(state0.replace(info={**state0.info, "step": jnp.full((N,), last, jnp.int32),
                                    "motion_time0": t0 - last * env.control_dt}))
    out = step(params, s, a)
    assert np.all(out.done) and np.all(out.truncated)
    np.testing.assert_array_equal(out.metrics["term_timeout"], 1.0)
    # end of the clamped clip: success, not truncated; the looping clip goes on
    length = float(lib.length[1])
    mid = jnp.array([1] * 4 + [0] * 4, jnp.int32)
    s = commit(state0.replace(info={**state0.info, "motion_id": mid,
                                    "motion_time0": jnp.full((N,), length - 0.5 * env.control_dt, jnp.float32),
                                    "step": jnp.zeros((N,), jnp.int32)}))
    out = step(params, s, a)
    np.testing.assert_array_equal(out.done, [True] * 4 + [False] * 4)
    assert not np.any(out.truncated)
    np.testing.assert_array_equal(out.metrics["term_success"], [1.0] * 4 + [0.0] * 4)
    # torso on the ground: failure, except on the first step
    q = g1.default_qpos.astype(np.float32).copy()
    q[2], q[3:7] = 0.05, [np.cos(np.pi / 4), 0.0, -np.sin(np.pi / 4), 0.0]
    phys = state0.physics.replace(qpos=jnp.broadcast_to(jnp.asarray(q), state0.physics.qpos.shape),
                                  qvel=jnp.zeros_like(state0.physics.qvel))
    first = step(params, commit(state0.replace(physics=phys)), a)
    assert not np.any(first.done)
    later = commit(state0.replace(physics=phys, info={**state0.info, "step": jnp.full((N,), 5, jnp.int32)}))
    out = step(params, later, a)
    assert np.all(out.done) and not np.any(out.truncated)
    np.testing.assert_array_equal(out.metrics["term_fail"], 1.0)
    np.testing.assert_array_equal(out.reward >= 0, True)
