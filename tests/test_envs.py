"""Character env (mjxmimic.envs.char / physics) and config registry tests, on K1 (CPU).

One jitted vmapped reset/step pair (8 envs) is compiled once per module and shared.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.core import LAPACK_SPLIT_FLOPS, cpu_env_chunk, vmap_envs
from mjxmimic.envs.char import CharConfig, CharEnv, action_bounds, char_obs_size, compute_char_obs
from mjxmimic.envs.registry import ConfigError, load_config, make_env, parse_overrides
from mjxmimic.learning.ppo import PPOConfig
from mjxmimic.motions.lib import build_motion_lib, sample
from mjxmimic.robots import load_robot

from clips import synth_clip

N = 8


def lying_qpos(robot, height):
    """Default joint pose, root pitched 90 degrees (on its back) at ``height``."""
    q = robot.default_qpos.astype(np.float32).copy()
    q[2] = height
    q[3:7] = [np.cos(np.pi / 4), 0.0, -np.sin(np.pi / 4), 0.0]
    return q


@pytest.fixture(scope="module")
def env(k1):
    return CharEnv(CharConfig(robot="k1", episode_length=2.0), robot=k1)


@pytest.fixture(scope="module")
def params(env):
    return env.default_params(None)


@pytest.fixture(scope="module")
def fns(env):
    return (jax.jit(jax.vmap(env.reset, in_axes=(None, 0))),
            jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0))))


@pytest.fixture(scope="module")
def state0(fns, params):
    reset, _ = fns
    return reset(params, jax.random.split(jax.random.PRNGKey(0), N))


def commit(tree):
    """Commit arrays to the device: jit caches committed and uncommitted inputs separately,
    so a hand-edited state would otherwise recompile the shared step."""
    return jax.device_put(tree, jax.devices()[0])


def _hold(env, state):
    """PD targets = current joint angles (stand still)."""
    return state.physics.qpos[:, env.robot.qpos_idx]


# --------------------------------------------------------------------------------- static parts
def test_substeps_are_derived():
    assert physics.num_substeps(1 / 120, 1 / 30) == 4
    assert physics.num_substeps(1 / 240, 1 / 30) == 8
    with pytest.raises(ValueError, match="whole multiple"):
        physics.num_substeps(1 / 100, 1 / 30)


def test_env_static_attributes(env, k1):
    assert env.num_substeps == 4 and env.control_dt == pytest.approx(1 / 30)
    assert env.max_episode_steps == 60
    assert env.action_size == k1.num_joints == 22
    assert env.obs_size == char_obs_size(22, 5, True) == 1 + 6 + 3 + 3 + 6 * 22 + 22 + 15
    # Feet, ankles and shanks may touch the ground; trunk, head, arms and hips may not.
    fall_bodies = {k1.body_names[k1.model.geom_bodyid[g]] for g in env.fall_geom_ids}
    assert "Trunk" in fall_bodies and "Head_2" in fall_bodies
    assert not fall_bodies & {"left_foot_link", "right_foot_link", "Left_Shank", "Right_Shank"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.obs_size = 3


def test_action_bounds_follow_mimickit():
    rng = np.array([[-1.0, 3.0], [-0.5, 0.5]])
    lo, hi = action_bounds(rng, zero_center=False)
    np.testing.assert_allclose(lo, [1.0 - 1.4 * 2.0, -0.7], rtol=1e-6)
    np.testing.assert_allclose(hi, [1.0 + 1.4 * 2.0, 0.7], rtol=1e-6)
    lo, hi = action_bounds(rng, zero_center=True)  # centred on 0, widest side
    np.testing.assert_allclose(lo, [-4.2, -0.7], rtol=1e-6)
    np.testing.assert_allclose(hi, [4.2, 0.7], rtol=1e-6)
    lo, hi = action_bounds(rng, zero_center=True, center=[0.5, 0.1])  # a given centre, widest side
    np.testing.assert_allclose(lo, [0.5 - 1.4 * 2.5, 0.1 - 1.4 * 0.6], rtol=1e-6)
    np.testing.assert_allclose(hi, [0.5 + 1.4 * 2.5, 0.1 + 1.4 * 0.6], rtol=1e-6)


def test_default_pose_action_center_stands_on_a_zero_action(k1):
    """K1's zero joint angles hold the arms out sideways; the default_pose centre maps a zero
    normalised action onto the standing pose (sim and deploy profiles' own poses)."""
    for profile in ("sim", "deploy"):
        env = CharEnv(CharConfig(robot="k1", zero_center_action=True, action_center="default_pose", profile=profile))
        np.testing.assert_allclose(env.normalized_to_action(jnp.zeros(env.action_size)),
                                   env.profile.default_joint_pos, atol=1e-6)
        assert np.abs(env.profile.default_joint_pos).max() > 1.0   # shoulder roll ±1.3, not 0
    with pytest.raises(ValueError, match="action_center"):
        CharConfig(robot="k1", action_center="middle")


def test_action_mapping_and_clipping(env):
    lo, hi = env.action_low, env.action_high
    np.testing.assert_allclose(env.normalized_to_action(-jnp.ones(env.action_size)), lo, rtol=1e-6)
    np.testing.assert_allclose(env.normalized_to_action(jnp.ones(env.action_size)), hi, rtol=1e-6)
    np.testing.assert_allclose(env.normalized_to_action(jnp.zeros(env.action_size)), 0.5 * (lo + hi), atol=1e-6)
    big = jnp.asarray(hi) + 5.0
    np.testing.assert_allclose(env.action_to_target(big), hi)
    mid = 0.5 * (jnp.asarray(lo) + jnp.asarray(hi))
    np.testing.assert_allclose(env.action_to_target(mid), mid)


# --------------------------------------------------------------------------------- observations
@pytest.fixture(scope="module")
def obs_of(env, params):
    """Jitted char obs of (qpos, qvel) for a local-frame and a global-frame env."""
    env_g = CharEnv(CharConfig(robot="k1", global_obs=True), robot=env.robot)

    @jax.jit
    def f(qpos, qvel):
        d = physics.set_state(params.model, qpos, qvel)
        fr = env.char_frame(d)
        return env.char_obs(fr), env_g.char_obs(fr), fr

    return f


def _random_state(k1, seed):
    rng = np.random.default_rng(seed)
    q = k1.default_qpos.astype(np.float32).copy()
    q[0:3] = [rng.normal(), rng.normal(), 0.6]
    q[3:7] = rmath.normalize(jnp.asarray(rng.normal(size=4), jnp.float32))
    lo, hi = k1.joint_range.T
    q[k1.qpos_idx] = rng.uniform(lo, hi)
    v = rng.normal(size=k1.model.nv).astype(np.float32)
    return jnp.asarray(q), jnp.asarray(v)


def test_char_obs_layout(obs_of, env, k1):
    q, v = _random_state(k1, 0)
    obs, _, fr = obs_of(q, v)
    J = k1.num_joints
    assert obs.shape == (env.obs_size,)
    assert obs[0] == pytest.approx(float(q[2]))                      # root height
    np.testing.assert_allclose(obs[13 + 6 * J: 13 + 7 * J], v[k1.qvel_idx], rtol=1e-6)  # joint velocities
    # joint j's tan-norm is its hinge rotation applied to x and z
    jrot = rmath.quat_from_axis_angle(jnp.asarray(env.joint_axes), q[k1.qpos_idx])
    np.testing.assert_allclose(obs[13: 13 + 6 * J], rmath.quat_to_tan_norm(jrot).reshape(-1), atol=1e-6)
    # key bodies relative to the root, in the heading frame
    key = fr.body_pos[env.key_body_ids] - q[None, 0:3]
    key = rmath.quat_rotate(rmath.heading_quat_inv(q[3:7])[None], key)
    np.testing.assert_allclose(obs[-15:], key.reshape(-1), atol=1e-5)
    # root velocity in the heading frame; angular velocity converted from MuJoCo's body frame
    h = rmath.heading_quat_inv(q[3:7])
    np.testing.assert_allclose(obs[7:10], rmath.quat_rotate(h, v[0:3]), atol=1e-5)
    np.testing.assert_allclose(obs[10:13], rmath.quat_rotate(h, rmath.quat_rotate(q[3:7], v[3:6])), atol=1e-5)


def test_heading_invariance(obs_of, k1):
    q, v = _random_state(k1, 1)
    yaw = 1.1
    rz = rmath.yaw_quat(jnp.float32(yaw))
    q2 = q.at[0:3].set(rmath.quat_rotate(rz, q[0:3])).at[3:7].set(rmath.quat_mul(rz, q[3:7]))
    v2 = v.at[0:3].set(rmath.quat_rotate(rz, v[0:3]))  # angular qvel is body-frame: unchanged
    local1, global1, _ = obs_of(q, v)
    local2, global2, _ = obs_of(q2, v2)
    np.testing.assert_allclose(local1, local2, atol=2e-5)
    assert float(jnp.max(jnp.abs(global1 - global2))) > 0.1  # global obs do see the rotation


def test_compute_char_obs_without_key_bodies_or_height():
    o = compute_char_obs(jnp.zeros(3), jnp.array([1.0, 0, 0, 0]), jnp.ones(3), jnp.ones(3),
                         jnp.tile(jnp.array([1.0, 0, 0, 0]), (2, 1)), jnp.ones(2), jnp.zeros((0, 3)),
                         global_obs=False, root_height_obs=False)
    assert o.shape == (char_obs_size(2, 0, False),) == (6 + 3 + 3 + 12 + 2,)
    np.testing.assert_allclose(o[:6], [1, 0, 0, 0, 0, 1])


# --------------------------------------------------------------------------------- falls and RSI
def test_ground_contact_detection(env, params, k1):
    @jax.jit
    def fallen(qpos, step):
        d = physics.set_state(params.model, qpos, jnp.zeros(k1.model.nv))
        return env.has_fallen(params, d, {"step": step})

    stand = jnp.asarray(k1.default_qpos, jnp.float32)
    lying = jnp.asarray(lying_qpos(k1, 0.05))
    assert not bool(fallen(stand, 5))       # feet on the floor are allowed
    assert bool(fallen(lying, 5))           # trunk on the floor is a fall
    assert not bool(fallen(lying, 1))       # ... except on the first step of an episode
    assert not bool(fallen(lying.at[2].set(0.5), 5))  # lying, but in the air


def test_reference_state_init_from_motion_lib(k1):
    clips = [synth_clip(k1, "wrap", name="a"), synth_clip(k1, "clamp", seconds=1.0, name="b")]
    lib = build_motion_lib(clips, k1, weights=[1.0, 0.0])  # only clip 0 is ever drawn
    env = CharEnv(CharConfig(robot="k1"), robot=k1)
    params = env.default_params(lib)
    qpos, qvel, info = jax.jit(jax.vmap(lambda k: env.initial_state(params, k)))(
        jax.random.split(jax.random.PRNGKey(3), 16))
    assert np.all(np.asarray(info["motion_id"]) == 0)
    t = np.asarray(info["motion_time0"])
    assert np.all((t >= 0) & (t <= 2.0)) and np.ptp(t) > 0.3      # random times over the clip
    f = sample(lib, info["motion_id"], info["motion_time0"])
    np.testing.assert_allclose(qpos, f.qpos(lib), atol=1e-6)
    np.testing.assert_allclose(qvel, f.qvel(lib), atol=1e-6)
    # no rand_reset: the clip's start
    env0 = CharEnv(CharConfig(robot="k1", rand_reset=False), robot=k1)
    q0, _, info0 = env0.initial_state(params, jax.random.PRNGKey(0))
    assert float(info0["motion_time0"]) == 0.0
    np.testing.assert_allclose(q0[:3], clips[0].root_pos[0], atol=1e-5)


# --------------------------------------------------------------------------------- stepping
def test_vmapped_reset_and_step_8_envs(fns, params, env, state0):
    _, step = fns
    assert state0.obs.shape == (N, env.obs_size)
    s = state0
    for _ in range(15):
        s = step(params, s, _hold(env, s))
    assert s.obs.shape == (N, env.obs_size) and np.all(np.isfinite(s.obs))
    assert not np.any(s.done)
    np.testing.assert_array_equal(s.info["step"], 15)
    np.testing.assert_allclose(s.reward, 1.0)  # MimicKit's char env: reward 1 per step
    assert set(s.metrics) == {"nan_resets", "term_fail", "term_success", "term_timeout"}
    assert np.all(np.asarray(s.physics.qpos[:, 2]) > 0.45)  # still standing after 0.5 s
    # body poses describe the final qpos (kinematics synced after the substeps)
    np.testing.assert_allclose(s.physics.xpos[:, env.robot.root_body_id], s.physics.qpos[:, :3], atol=1e-6)


def test_nan_guard_resets_and_counts(fns, params, env, state0):
    _, step = fns
    s = state0.replace(info={**state0.info, "step": jnp.full((N,), 7, jnp.int32)})
    qvel = s.physics.qvel.at[0, 5].set(jnp.nan).at[1, 0].set(1e4)  # NaN; a huge root velocity
    s = commit(s.replace(physics=s.physics.replace(qvel=qvel)))
    out = step(params, s, _hold(env, s))
    np.testing.assert_array_equal(out.metrics["nan_resets"], [1, 1] + [0] * (N - 2))
    np.testing.assert_array_equal(out.done, [True, True] + [False] * (N - 2))
    assert not np.any(out.truncated)
    assert np.all(np.isfinite(out.obs)) and np.all(np.isfinite(out.terminal_obs))
    assert np.all(np.isfinite(out.physics.qpos)) and np.all(np.isfinite(out.physics.qvel))
    np.testing.assert_array_equal(out.info["step"], [0, 0] + [8] * (N - 2))
    np.testing.assert_array_equal(out.reward[:2], 0.0)
    for k in ("term_fail", "term_timeout", "term_success"):
        np.testing.assert_array_equal(out.metrics[k][:2], 0.0)
    np.testing.assert_allclose(out.obs[0], state0.obs[0], atol=1e-6)  # the default-pose reset obs


def test_auto_reset_keeps_terminal_obs(fns, params, env, state0):
    _, step = fns
    s = state0
    for _ in range(3):  # move a little away from the reset state
        s = step(params, s, _hold(env, s) + 0.2)
    last = env.max_episode_steps - 1
    steps = jnp.array([last] * 4 + [last - 10] * 4, jnp.int32)
    s = commit(s.replace(info={**s.info, "step": steps}))
    out = step(params, s, _hold(env, s))
    done = np.array([True] * 4 + [False] * 4)
    np.testing.assert_array_equal(out.done, done)
    np.testing.assert_array_equal(out.truncated, done)
    np.testing.assert_array_equal(out.metrics["term_timeout"], done.astype(np.float32))
    # done envs restarted (obs = reset obs), terminal_obs is where the episode ended;
    # all envs had identical physics, so a not-done twin shows the pre-reset obs.
    np.testing.assert_allclose(out.obs[:4], np.broadcast_to(state0.obs[0], (4, env.obs_size)), atol=1e-6)
    np.testing.assert_allclose(out.terminal_obs[:4], np.broadcast_to(out.obs[4], (4, env.obs_size)), atol=1e-5)
    assert float(jnp.max(jnp.abs(out.terminal_obs[0] - out.obs[0]))) > 1e-2
    np.testing.assert_array_equal(out.terminal_obs[4:], out.obs[4:])
    np.testing.assert_array_equal(out.info["step"], [0] * 4 + [last - 9] * 4)


def test_fall_terminates_after_first_step(fns, params, env, state0, k1):
    _, step = fns
    lying = jnp.broadcast_to(jnp.asarray(lying_qpos(k1, 0.05)), state0.physics.qpos.shape)
    s = commit(state0.replace(physics=state0.physics.replace(qpos=lying, qvel=jnp.zeros_like(state0.physics.qvel))))
    first = step(params, s, _hold(env, s))  # info step 0 -> 1: failures ignored
    assert not np.any(first.done)
    later = commit(s.replace(info={**s.info, "step": jnp.full((N,), 5, jnp.int32)}))
    out = step(params, later, _hold(env, later))
    assert np.all(out.done) and not np.any(out.truncated)
    np.testing.assert_array_equal(out.metrics["term_fail"], 1.0)
    np.testing.assert_array_equal(out.info["step"], 0)


# --------------------------------------------------------------------------------- registry
@pytest.fixture(scope="module")
def clip_files(tmp_path_factory, k1):
    d = tmp_path_factory.mktemp("clips")
    k = synth_clip(k1).save_npz(d / "k1_walk.npz")
    g = synth_clip(load_robot("g1")).save_npz(d / "g1_walk.npz")
    return {"k1": k, "g1": g}


@pytest.mark.parametrize("name, robot, obs", [("k1_walk", "k1", 182 + 3 * (3 + 6 + 6 * 22 + 15)),
                                               ("g1_walk", "g1", 231 + 3 * (3 + 6 + 6 * 29 + 15))])
def test_shipped_configs_build(name, robot, obs, clip_files):
    from mjxmimic.envs.registry import CONFIGS_DIR
    raw = yaml.safe_load((CONFIGS_DIR / f"{name}.yaml").read_text())
    assert raw["env"]["motion_file"].startswith(f"motions/{robot}/")  # ships a repo file
    env, params, agent = make_env(name, {"env.motion_file": str(clip_files[robot]), "env.num_envs": 16,
                                         "agent.actor_lr": "5e-5"})
    assert env.robot.name == robot and env.obs_size == obs and env.num_substeps == 4
    assert isinstance(agent, PPOConfig) and agent.num_envs == 16
    assert agent.actor_optimizer.learning_rate == 5e-5 and agent.critic_optimizer.learning_rate == 2e-4
    assert agent.actor_optimizer.type == agent.critic_optimizer.type == "adam"
    assert agent.actor_hidden == (1024, 512) and agent.steps_per_iter == 32
    assert params.motion.num_motions == 1
    w = np.asarray(params.joint_err_w)
    knee = env.robot.joint_names.index("left_knee_joint" if robot == "g1" else "Left_Knee_Pitch")
    assert w[knee] == pytest.approx(0.6) and w.max() == 1.0 and w.shape == (env.num_joints,)


def _write(tmp_path, cfg):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_config_validation_errors(tmp_path, clip_files):
    base = {"env": {"name": "deepmimic", "robot": "k1", "motion_file": str(clip_files["k1"]), "num_envs": 4},
            "agent": {"name": "ppo"}}
    c = load_config(_write(tmp_path, base))
    assert c["agent_cfg"].num_envs == 4 and c["env_cfg"].robot == "k1"

    def bad(mod, match):
        cfg = yaml.safe_load(yaml.safe_dump(base))
        for sec, k, v in mod:
            cfg[sec][k] = v
        with pytest.raises(ConfigError, match=match):
            load_config(_write(tmp_path, cfg))

    bad([("env", "episode_lenght", 3.0)], r"unknown key\(s\) \['episode_lenght'\]")
    bad([("env", "global_obs", "maybe")], "global_obs: expected true/false")
    bad([("env", "tar_obs_steps", [1, 2.5])], r"tar_obs_steps\[1\]: expected an integer")
    bad([("agent", "steps_per_iter", "many")], "steps_per_iter: expected an integer")
    bad([("agent", "num_envs", 3)], "env.num_envs")
    bad([("env", "name", "nope")], "env.name 'nope' unknown")
    bad([("agent", "name", "nope")], "agent.name 'nope' unknown")
    bad([("env", "motion_file", "no/such/file.npz")], "not found")
    bad([("env", "joint_err_w", {"Left_Knee": 0.5})], r"unknown joint\(s\) \['Left_Knee'\]")
    bad([("agent", "actor_optimizer", {"typ": "sgd"})], r"actor_optimizer: unknown key\(s\) \['typ'\]")
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_config(_write(tmp_path, {**base, "trainer": {}}))
    with pytest.raises(ConfigError, match="no config named"):
        load_config("no_such_config")


def test_overrides(tmp_path, clip_files):
    base = {"env": {"robot": "k1", "motion_file": str(clip_files["k1"])}, "agent": {}}
    ov = parse_overrides(["env.num_envs=32", "env.tar_obs_steps=[1, 5]", "agent.critic_lr=2e-4",
                          "agent.actor_optimizer.type=adam", "env.global_obs=false"])
    c = load_config(_write(tmp_path, base), ov)
    assert c["num_envs"] == 32 and c["agent_cfg"].num_envs == 32
    assert c["env_cfg"].tar_obs_steps == (1, 5) and c["env_cfg"].global_obs is False
    assert c["agent_cfg"].critic_optimizer.learning_rate == pytest.approx(2e-4)
    assert c["agent_cfg"].actor_optimizer.type == "adam"
    with pytest.raises(ConfigError, match="env.<field>"):
        load_config(_write(tmp_path, base), {"num_envs": 3})
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["env.num_envs"])


def test_dataset_motion_file_and_amp_agent(tmp_path, clip_files, k1):
    synth_clip(k1, "clamp", seconds=1.0).save_npz(tmp_path / "b.npz")
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(
        {"motions": [{"file": str(clip_files["k1"]), "weight": 3.0}, {"file": "b.npz", "weight": 1.0}]}))
    cfg = {"env": {"name": "char", "robot": "k1", "motion_file": str(tmp_path / "data.yaml"), "num_envs": 2},
           "agent": {"name": "amp", "disc_lr": 1e-3, "actor_low": None}}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['actor_low'\]"):
        load_config(_write(tmp_path, cfg))
    del cfg["agent"]["actor_low"]
    env, params, agent = make_env(_write(tmp_path, cfg))
    assert isinstance(env, CharEnv) and env.obs_size == 182
    np.testing.assert_allclose(params.motion.weights, [0.75, 0.25])
    assert type(agent).__name__ == "AMPConfig" and agent.disc_optimizer.learning_rate == pytest.approx(1e-3)
    assert agent.disc_optimizer.weight_decay == pytest.approx(1e-4)  # the rest of the default kept


# ------------------------------------------------------------------------ batching envs
def test_cpu_env_chunk_stays_under_the_lapack_split():
    for nv in (28, 34, 35, 41):  # K1, K1 + ball, G1, G1 + ball
        c, cost = cpu_env_chunk(nv), nv ** 3 // 3
        assert c * cost < LAPACK_SPLIT_FLOPS <= (c + 1) * cost
    assert cpu_env_chunk(34) == 15 and cpu_env_chunk(500) == 1


@pytest.mark.parametrize("n, chunk", [(5, 8), (12, 4), (13, 4), (7, 3)])
def test_vmap_envs_chunks_equal_one_vmap(n, chunk):
    def fn(p, s, a):
        return {"x": jnp.sin(s["x"] * p) + a, "empty": jnp.zeros((0, 3)) + s["empty"].sum()}

    s = {"x": jnp.arange(n * 2.0).reshape(n, 2), "empty": jnp.zeros((n, 0, 3))}
    a = jnp.linspace(0.0, 1.0, n)[:, None]
    want = jax.vmap(fn, in_axes=(None, 0, 0))(1.5, s, a)
    got = jax.jit(vmap_envs(fn, chunk))(1.5, s, a)
    assert got["empty"].shape == (n, 0, 3)
    np.testing.assert_allclose(np.asarray(got["x"]), np.asarray(want["x"]), rtol=1e-6)
