"""Tracking (BeyondMimic-style) env tests on G1/K1 (CPU): pure reward/termination/curriculum
functions against hand-computed values, anchor-relative invariance, a real G1 clip on its
reference (4 envs, one jit) and a 2-iteration PPO run of ``g1_track``."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.tracking import (EVAL_OVERRIDES, FAIL_CAUSES, REWARD_TERMS, TrackingConfig, TrackingEnv,
                                    action_rate_penalty, bin_weights, compute_terminations, ema_counts, exp_reward,
                                    joint_limit_penalty, make_bins, relative_targets, rot6d)
from mjxmimic.motions.io import load_clip
from mjxmimic.motions.lib import build_motion_lib, sample

from clips import synth_clip

N = 4
REAL_WALK = Path(__file__).resolve().parents[2] / "shared" / "motions" / "mimickit_g1" / "g1_walk.pkl"
EVAL = dict(start="first_frame", obs_noise_scale=0.0, reset_noise_scale=0.0)


def _qz(a):
    return rmath.yaw_quat(jnp.float32(a))


# --------------------------------------------------------------------------------- pure functions
def test_relative_targets_hand_computed():
    # Robot anchor at (1, 2, 0.7) yawed +90°, reference anchor at (0, 0, 0.8) unrotated:
    # dq = +90° yaw; a body 0.1 m ahead (+x) of the reference anchor and 0.3 m lower has
    # target (1, 2.1, 0.5) (ahead of the robot = +y), orientation dq·q_ref.
    a_pos, a_rot = jnp.array([1.0, 2.0, 0.7]), _qz(np.pi / 2)
    r_pos, r_rot = jnp.array([0.0, 0.0, 0.8]), jnp.array([1.0, 0, 0, 0])
    q_b = rmath.quat_from_axis_angle(jnp.array([0.0, 1.0, 0.0]), jnp.float32(0.3))
    p, q = relative_targets(a_pos, a_rot, r_pos, r_rot, jnp.array([[0.1, 0.0, 0.5]]), q_b[None])
    np.testing.assert_allclose(p[0], [1.0, 2.1, 0.5], atol=1e-6)
    np.testing.assert_allclose(q[0], rmath.quat_mul(_qz(np.pi / 2), q_b), atol=1e-6)
    # Robot roll/pitch do not leak into dq: a pitched robot anchor gives the same targets.
    tilt = rmath.quat_mul(a_rot, rmath.quat_from_axis_angle(jnp.array([0.0, 1.0, 0.0]), jnp.float32(0.4)))
    p2, _ = relative_targets(a_pos, tilt, r_pos, r_rot, jnp.array([[0.1, 0.0, 0.5]]), q_b[None])
    np.testing.assert_allclose(p2, p, atol=1e-6)


def test_reward_terms_and_rot6d_hand_computed():
    assert float(exp_reward(jnp.float32(0.09), 0.3)) == pytest.approx(np.exp(-1.0), rel=1e-6)
    assert float(action_rate_penalty(jnp.array([1.0, -1.0]), jnp.array([0.5, 0.0]))) == pytest.approx(1.25)
    # soft limits ±0.9: overshoots 0.1 (above) and 0.3 (below); inside counts 0
    pen = joint_limit_penalty(jnp.array([1.0, -1.2, 0.5]), -0.9 * jnp.ones(3), 0.9 * jnp.ones(3))
    assert float(pen) == pytest.approx(0.4, rel=1e-5)
    np.testing.assert_allclose(rot6d(jnp.array([1.0, 0, 0, 0])), [1, 0, 0, 1, 0, 0], atol=1e-7)
    # 90° yaw: columns x -> (0, 1, 0), y -> (-1, 0, 0), row-major [r00, r01, r10, r11, r20, r21]
    np.testing.assert_allclose(rot6d(_qz(np.pi / 2)), [0, -1, 1, 0, 0, 0], atol=1e-6)


def test_terminations_hand_computed():
    one = jnp.array([1.0, 0, 0, 0])
    pitch = lambda a: rmath.quat_from_axis_angle(jnp.array([0.0, 1.0, 0.0]), jnp.float32(a))  # noqa: E731
    args = dict(max_height=0.25, max_gravity=0.8, max_ee_height=0.25)
    ok = compute_terminations(0.7, 0.8, one, one, jnp.array([0.1, 0.9]), jnp.array([0.2, 1.0]), **args)
    assert not any(bool(x) for x in ok)
    h, g, e = compute_terminations(0.5, 0.8, one, one, jnp.array([0.1, 0.9]), jnp.array([0.2, 1.2]), **args)
    assert bool(h) and not bool(g) and bool(e)     # |0.3| > 0.25; ee 0.3 > 0.25
    # g_z = -cos(pitch): 1 - cos(1.4) = 0.83 > 0.8 fails, 1 - cos(1.3) = 0.73 does not
    assert bool(compute_terminations(0.8, 0.8, pitch(1.4), one, jnp.zeros(1), jnp.zeros(1), **args)[1])
    assert not bool(compute_terminations(0.8, 0.8, pitch(1.3), one, jnp.zeros(1), jnp.zeros(1), **args)[1])


# ------------------------------------------------------------------------- adaptive sampling
def test_bins_ema_and_weights_hand_computed():
    start, nb, bm = make_bins(np.array([3.5, 2.0]), 1.0)          # floor(L)+1 bins: 4 and 3
    np.testing.assert_array_equal(nb, [4, 3])
    np.testing.assert_array_equal(start, [0, 4])
    np.testing.assert_array_equal(bm, [0, 0, 0, 0, 1, 1, 1])
    # EMA closed form == the per-step recursion c <- a*h_t + (1-a)*c
    rng = np.random.default_rng(0)
    failed = rng.random((5, 6)) < 0.4
    fbin = rng.integers(0, 7, (5, 6))
    c0 = rng.random(7).astype(np.float32)
    a = 0.3
    ref = c0.copy()
    for t in range(5):
        ref = a * np.bincount(fbin[t][failed[t]], minlength=7) + (1 - a) * ref
    np.testing.assert_allclose(ema_counts(jnp.asarray(c0), jnp.asarray(failed), jnp.asarray(fbin), a), ref, rtol=1e-5)
    # K=1: p_i = w_clip (c_i + u/B) / sum over the clip
    c = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    mw = jnp.array([0.75, 0.25])
    p = bin_weights(c, jnp.asarray(start), jnp.asarray(nb), jnp.asarray(bm), mw, 0.1, 1, 0.8)
    d0, d1 = 4 * 0.025 + 1.0, 3 * 0.1 / 3 + 2.0
    exp = ([0.75 * x / d0 for x in (0.025, 1.025, 0.025, 0.025)]
           + [0.25 * x / d1 for x in (0.1 / 3, 0.1 / 3, 2.0 + 0.1 / 3)])
    np.testing.assert_allclose(p, exp, rtol=1e-5)
    assert float(jnp.sum(p)) == pytest.approx(1.0, rel=1e-6)
    # K=2, λ=1: k = (1/2, 1/2), and each clip's last bin is repeated past its end
    p2 = bin_weights(c, jnp.asarray(start), jnp.asarray(nb), jnp.asarray(bm), mw, 0.0, 2, 1.0)
    raw0 = np.array([0.5, 0.5, 0.0, 0.0])          # bin 0 sees bin 1's failures, bin 3 itself twice
    raw1 = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(p2, np.concatenate([0.75 * raw0 / raw0.sum(), 0.25 * raw1 / raw1.sum()]), atol=1e-6)


@pytest.fixture(scope="module")
def multi_lib(g1):
    return build_motion_lib([synth_clip(g1, "wrap", seconds=3.5, name="a"),
                             synth_clip(g1, "clamp", seconds=2.0, name="b")], g1, weights=[1.0, 1.0])


def test_curriculum_moves_starts_to_failing_bins(g1, multi_lib):
    env = TrackingEnv(TrackingConfig(robot="g1", adaptive_alpha=0.5), robot=g1)
    params = env.default_params(multi_lib)
    np.testing.assert_allclose(params.bin_weights, [0.125] * 4 + [0.5 / 3] * 3, rtol=1e-5)  # no failures: uniform
    cs = env.curriculum_init(params)
    T, n = 3, 8
    failed = jnp.zeros((T, n), bool).at[:, :5].set(True)
    fbin = jnp.full((T, n), 5, jnp.int32).at[:, 5:].set(0)      # planted failures in bin 5 (clip b, 2nd bin)
    cs, m = env.curriculum_update(cs, (failed, fbin))
    assert float(cs[5]) == pytest.approx(5 * (1 - 0.5 ** 3), rel=1e-5) and float(jnp.sum(cs)) == float(cs[5])
    assert np.isfinite(float(m["curriculum_fail_count"]))
    p = env.curriculum_apply(params, cs)
    w = np.asarray(p.bin_weights)
    assert w[5] > 0.45 and w[5] == w.max() and w.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(w[:4], 0.125)                             # clip a keeps its dataset share
    # resets draw their start times from that bin: [1/3, 2/3] of clip b's 2 s
    init = jax.jit(jax.vmap(env.initial_state, in_axes=(None, 0)))
    _, _, info = init(p, jax.random.split(jax.random.PRNGKey(1), 256))
    tb = np.asarray(info["motion_time0"])[np.asarray(info["motion_id"]) == 1]
    inside = (tb >= 2.0 / 3) & (tb <= 4.0 / 3)
    assert inside.mean() > 0.8
    # the bin of a start time is the one it was drawn from
    np.testing.assert_array_equal(np.asarray(info["fail_bin"])[np.asarray(info["motion_id"]) == 1][inside], 5)
    # uniform / first-frame starts ignore the curriculum
    uni = TrackingEnv(TrackingConfig(robot="g1", start="uniform"), robot=g1)
    assert uni.curriculum_apply(params, cs) is params
    _, _, info = jax.jit(jax.vmap(uni.initial_state, in_axes=(None, 0)))(
        uni.default_params(multi_lib), jax.random.split(jax.random.PRNGKey(2), 256))
    counts = np.bincount(np.asarray(info["fail_bin"]), minlength=7)   # expected 32 per bin of a, 43 of b
    assert counts.min() > 15 and abs(int(np.sum(np.asarray(info["motion_id"]) == 1)) - 128) < 40


# --------------------------------------------------------------------------------- the env
def test_obs_sizes(g1, k1):
    env = TrackingEnv(TrackingConfig(robot="g1"), robot=g1)
    assert env.actor_obs_size == 160 and env.obs_size == 160 + 286      # mjlab: noisy actor + noise-free critic
    assert env.num_substeps == 4 and env.control_dt == pytest.approx(0.02)
    fut = TrackingEnv(TrackingConfig(robot="g1", future_steps=(1, 2)), robot=g1)
    assert fut.actor_obs_size == 160 + 4 * 29
    # action scale 0.25·τmax/Kp (notes' table: hip_pitch 0.548, knee 0.351, wrist_pitch 0.0745)
    s = dict(zip(g1.joint_names, env.action_scale))
    assert s["left_hip_pitch_joint"] == pytest.approx(0.5475, abs=1e-3)
    assert s["left_knee_joint"] == pytest.approx(0.3507, abs=1e-3)
    assert s["left_wrist_pitch_joint"] == pytest.approx(0.0745, abs=1e-3)
    np.testing.assert_allclose(0.5 * (env.action_low + env.action_high), g1.default_joint_pos, atol=1e-6)
    with pytest.raises(ValueError, match="start"):
        TrackingConfig(start="random")
    from mjxmimic.envs.registry import make_env
    k1_env, k1_params, _ = make_env("k1_track", {"env.num_envs": 1})
    assert k1_env.actor_obs_size == 2 * 22 + 15 + 3 * 22 and k1_env.obs_size == 2 * 125 + 9 * 13
    assert k1_env.model.opt.timestep == 0.005 and int(jnp.sum(k1_params.num_bins)) == len(k1_params.bin_weights)


@pytest.mark.parametrize("name", ["g1", "k1"])
def test_stands_stably_at_5ms(name, request):
    """PD to q_default from the default pose at 0.005 s (MuJoCo C, same model): 0.75 s without
    drift or jitter. (Open-loop PD does not balance G1 for long at either timestep: it tips
    over after ~1.2 s at 1/120 s too; K1 stands indefinitely.)"""
    robot = request.getfixturevalue(name)
    env = TrackingEnv(TrackingConfig(robot=name, anchor_body=robot.body_names[1],
                                     tracked_bodies=(robot.body_names[1],),
                                     ee_bodies=tuple(robot.body_names[i] for i in robot.foot_body_ids)), robot=robot)
    m = env.model
    assert m.opt.timestep == 0.005 and robot.model.opt.timestep != 0.005   # the robot's model is untouched
    d = mujoco.MjData(m)
    d.qpos[:] = robot.default_qpos
    d.ctrl[:] = env.default_joint_pos
    for _ in range(150):
        mujoco.mj_step(m, d)
    assert np.all(np.isfinite(d.qpos))
    assert abs(d.qpos[2] - robot.default_qpos[2]) < 0.02
    assert np.max(np.abs(d.qvel)) < 1.0    # G1 starts tipping slowly (0.45 rad/s at 0.75 s; same at 1/120 s)


@pytest.fixture(scope="module")
def walk_env(g1):
    walk = load_clip(REAL_WALK, g1) if REAL_WALK.exists() else synth_clip(g1, "wrap", name="walk")
    lib = build_motion_lib([walk, synth_clip(g1, "clamp", seconds=0.1, name="short")], g1, weights=[1.0, 1.0])
    env = TrackingEnv(TrackingConfig(robot="g1", **EVAL), robot=g1)
    params = env.default_params(lib)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(None, 0)))
    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0)))
    return env, params, reset, step


def test_invariant_to_world_yaw_and_translation(walk_env):
    env, params, _, _ = walk_env
    lib = params.motion
    ref = sample(lib, jnp.int32(0), jnp.float32(0.4))
    rng = np.random.default_rng(1)
    qpos = np.asarray(ref.qpos(lib)) + np.concatenate([[0.05, -0.03, 0.02], 0.05 * rng.normal(size=4),
                                                       0.1 * rng.normal(size=29)])
    qpos[3:7] /= np.linalg.norm(qpos[3:7])
    qvel = 0.3 * rng.normal(size=env.model.nv)
    info = {"last_action": jnp.asarray(rng.normal(size=29), jnp.float32), "noise_key": jax.random.PRNGKey(0)}
    rz, shift = _qz(1.1), jnp.array([3.0, -2.0, 0.0])

    def obs(prm, qp, qv, fr):
        data = physics.set_state(prm.model, qp, qv)
        return env.build_obs(prm, data, info, fr, jax.tree_util.tree_map(lambda x: x[:0], fr))

    def move_frame(fr):
        return fr.replace(root_pos=rmath.quat_rotate(rz, fr.root_pos) + shift,
                          root_rot=rmath.quat_mul(rz, fr.root_rot),
                          body_pos=rmath.quat_rotate(rz[None], fr.body_pos) + shift,
                          body_rot=rmath.quat_mul(jnp.broadcast_to(rz, fr.body_rot.shape), fr.body_rot))

    qp2 = jnp.asarray(qpos).at[0:3].set(rmath.quat_rotate(rz, qpos[0:3]) + shift).at[3:7].set(
        rmath.quat_mul(rz, qpos[3:7]))
    qv2 = jnp.asarray(qvel).at[0:3].set(rmath.quat_rotate(rz, qvel[0:3]))  # body-frame ang vel unchanged
    f = jax.jit(obs)
    o1 = f(params, jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32), ref)
    o2 = f(params, qp2.astype(jnp.float32), qv2.astype(jnp.float32), move_frame(ref))
    assert o1.shape == (env.obs_size,)
    np.testing.assert_allclose(o1, o2, atol=2e-4)
    # ...while a yaw of the reference alone changes the anchor terms
    o3 = f(params, jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32), move_frame(ref))
    assert np.max(np.abs(np.asarray(o3 - o1)[58:67])) > 0.1
    # Noise: the actor part only, within U(-n, n) per term; the critic's copy stays clean.
    A = env.actor_obs_size
    np.testing.assert_allclose(o1[:A], o1[A:2 * A])
    o4 = np.asarray(f(params.replace(obs_noise_scale=jnp.float32(1.0)), jnp.asarray(qpos, jnp.float32),
                      jnp.asarray(qvel, jnp.float32), ref))
    np.testing.assert_array_equal(o4[A:], np.asarray(o1)[A:])
    d = np.abs(o4[:A] - np.asarray(o1)[:A])
    n = np.concatenate([np.zeros(58), np.full(3, 0.25), np.full(6, 0.05), np.full(3, 0.5), np.full(3, 0.2),
                        np.full(29, 0.01), np.full(29, 0.5), np.zeros(29)])
    assert np.all(d <= n + 1e-5) and np.all(d[n > 0] > 0) and d[n > 0].mean() > 0.3 * n[n > 0].mean()


def test_real_clip_on_reference_and_clip_end(walk_env):
    env, params, reset, step = walk_env
    s = reset(params, jax.random.split(jax.random.PRNGKey(0), N))
    mid = np.asarray(s.info["motion_id"])
    assert set(mid.tolist()) == {0, 1}, "the fixture key should start envs on both clips"
    np.testing.assert_array_equal(s.info["motion_time0"], 0.0)
    zero = jnp.broadcast_to(jnp.asarray(env.default_joint_pos), (N, env.action_size))   # normalised action 0
    s1 = step(params, s, zero)
    rmax = float(jnp.sum(params.reward_w[:7])) * env.control_dt
    assert not np.any(np.asarray(s1.done))
    for k in FAIL_CAUSES:
        np.testing.assert_array_equal(s1.metrics[f"fail_{k}"], 0.0)
    # A threshold no end effector can meet fires that termination alone, and the metric says which.
    sf = step(params.replace(term_ee_height=jnp.float32(-1.0)), s, zero)
    assert np.all(np.asarray(sf.done)) and not np.any(np.asarray(sf.truncated))
    np.testing.assert_array_equal(sf.metrics["fail_ee_height"], 1.0)
    np.testing.assert_array_equal(sf.metrics["fail_anchor_height"], 0.0)
    np.testing.assert_array_equal(sf.metrics["fail_gravity"], 0.0)
    # The joint-angle term (weight 0 by default) adds w·f·dt when weighted; f = exp(−mean Δq²/σ²)
    # is at most exp(−(mean |Δq|)²/σ²) (Jensen), with mean |Δq| the joint_pos_err metric.
    assert float(params.reward_w[REWARD_TERMS.index("joint_pos")]) == 0.0
    w = params.reward_w.at[REWARD_TERMS.index("joint_pos")].set(0.5)
    s1w = step(params.replace(reward_w=w), s, zero)
    fj = np.asarray(s1.metrics["r_joint_pos"])
    np.testing.assert_allclose(np.asarray(s1w.reward - s1.reward), 0.5 * fj * env.control_dt, atol=1e-6)
    assert np.all(fj > 0.9) and np.all(fj <= np.exp(-np.asarray(s1.metrics["joint_pos_err"]) ** 2 / 0.3 ** 2) + 1e-6)
    for k in ("r_anchor_pos", "r_body_pos"):
        assert np.all(np.asarray(s1.metrics[k]) > 0.95), k
    for k in ("r_anchor_ori", "r_body_ori"):
        assert np.all(np.asarray(s1.metrics[k]) > 0.8), k
    assert np.all(np.asarray(s1.reward) > 0.75 * rmax) and np.all(np.asarray(s1.reward) <= rmax + 1e-6)
    np.testing.assert_array_equal(s1.metrics["r_action_rate"], 0.0)
    assert all(f"r_{k}" in s1.metrics for k in REWARD_TERMS)
    # The 0.1 s clamp clip ends at step 5: "resample" ends it as a truncation (not a failure).
    for _ in range(4):
        s1 = step(params, s1, zero)
    end = mid == 1
    np.testing.assert_array_equal(np.asarray(s1.done), end)
    np.testing.assert_array_equal(np.asarray(s1.truncated), end)
    np.testing.assert_array_equal(np.asarray(s1.metrics["term_timeout"]), end.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(s1.metrics["term_success"]), 0.0)
    np.testing.assert_array_equal(np.asarray(s1.info["step"])[end], 0)
    assert np.all(np.isfinite(np.asarray(s1.obs)))


def test_eval_overrides_and_tiny_training_run():
    from mjxmimic.envs.registry import load_config, make_env
    from mjxmimic.learning import make_trainer

    c = load_config("g1_track", EVAL_OVERRIDES)["env_cfg"]
    assert (c.start, c.motion_end, c.obs_noise_scale, c.reset_noise_scale) == ("first_frame", "success", 0.0, 0.0)
    k1c = load_config("k1_track")["env_cfg"]
    assert k1c.anchor_body == "Trunk" and len(k1c.tracked_bodies) == 13
    # The tiny run trains the deployable K1 config: Booster's profile, the 119-number robot-side
    # actor observation (asymmetric critic) and every K1 randomisation, with the eval overrides' twin.
    env, params, agent = make_env("k1_walk_deploy", {"env.num_envs": 8, "agent.steps_per_iter": 4,
                                                     "agent.actor_hidden": [32], "agent.critic_hidden": [32],
                                                     "agent.actor_epochs": 1, "agent.critic_epochs": 1})
    assert agent.actor_optimizer.grad_clip == 1.0 and agent.learn_action_std and agent.action_std == 1.0
    assert env.actor_obs_size == 119 and env.dr_layout is not None and env.control_dt == pytest.approx(0.02)
    tr = make_trainer(env, params, agent)
    ts = tr.init(jax.random.PRNGKey(0))
    for _ in range(2):
        ts, m = tr.iteration(ts)
    m = {k: float(v) for k, v in m.items()}
    for k in ["reward_mean", "critic_loss", "actor_loss", "env/r_body_pos", "env/anchor_pos_err"]:
        assert np.isfinite(m[k]), k
    assert int(ts.iteration) == 2
    assert any(k.shape == (119, 32) for k in jax.tree_util.tree_leaves(ts.actor_params))   # the actor reads 119
    assert ts.obs_norm.mean.shape == (env.obs_size,)
    obs = ts.env_state.obs
    np.testing.assert_allclose(tr.policy(ts, obs), tr.policy(ts, obs[:, :119]), atol=1e-6)   # the deployed input


def test_reset_noise_ranges(g1):
    env = TrackingEnv(TrackingConfig(robot="g1", reset_noise_scale=1.0), robot=g1)
    params = env.default_params(build_motion_lib([synth_clip(g1, "wrap", seconds=1.0)], g1))
    qpos = jnp.asarray(g1.default_qpos, jnp.float32)
    qvel = jnp.zeros(g1.model.nv, jnp.float32).at[6:].set(0.3)
    qp, qv = jax.jit(jax.vmap(env.reset_noise, in_axes=(None, None, None, 0)))(
        params, qpos, qvel, jax.random.split(jax.random.PRNGKey(0), 512))
    dp = np.abs(np.asarray(qp[:, :3] - qpos[:3])).max(0)
    assert np.all(dp <= [0.05, 0.05, 0.01]) and np.all(dp > [0.04, 0.04, 0.008])
    np.testing.assert_allclose(np.linalg.norm(qp[:, 3:7], axis=-1), 1.0, atol=1e-5)
    yaw = np.abs(np.asarray(rmath.heading(qp[:, 3:7])))
    assert yaw.max() <= 0.2 + 1e-4 and yaw.max() > 0.15
    jp = np.asarray(qp[:, g1.qpos_idx])
    assert np.all(jp >= env.soft_low - 1e-6) and np.all(jp <= env.soft_high + 1e-6)
    assert np.abs(jp - g1.default_joint_pos).max() <= 0.1 + 1e-5
    dv = np.abs(np.asarray(qv[:, :6])).max(0)
    assert np.all(dv <= [0.5, 0.5, 0.2, 0.52, 0.52, 0.78]) and np.all(dv > 0.8 * np.array([0.5, 0.5, 0.2, 0.52, 0.52, 0.78]))
    np.testing.assert_array_equal(qv[:, 6:], np.float32(0.3))                # joint velocities stay the reference's
    zero = env.reset_noise(params.replace(reset_noise_scale=jnp.float32(0.0)), qpos, qvel, jax.random.PRNGKey(1))
    np.testing.assert_allclose(zero[0], qpos, atol=1e-6)
