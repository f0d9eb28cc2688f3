"""Observation sets (``env.observation: full | robot``): the robot sets hold no privileged term,
the layouts describe the actor obs, ``full`` is today's obs, noise stays within its widths, and
the learners train on the robot sets (actor input = ``actor_obs_size``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.registry import ConfigError, make_env
from mjxmimic.learning.amp import make_amp_trainer
from mjxmimic.learning.ppo import actor_obs_size
from mjxmimic.motions.lib import sample

TINY = {"env.num_envs": 2, "agent.steps_per_iter": 2, "agent.actor_hidden": [8], "agent.critic_hidden": [8],
        "agent.actor_epochs": 1, "agent.critic_epochs": 1}
K1_TRACK_ROBOT = [("ref_joint_pos", 22, 0.0), ("ref_joint_vel", 22, 0.0), ("anchor_ori", 6, 0.05), ("gyro", 3, 0.2),
                  ("joint_pos", 22, 0.01), ("joint_vel", 22, 0.5), ("last_action", 22, 0.0)]


def _qz(a):
    return jnp.array([np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)], jnp.float32)


def _rows(env):
    return [(t["name"], t["size"], t["noise"]) for t in env.actor_obs_layout()]


def _slices(env):
    out, i = {}, 0
    for t in env.actor_obs_layout():
        out[t["name"]] = slice(i, i + t["size"])
        i += t["size"]
    return out


# ------------------------------------------------------------------------------ layouts
@pytest.mark.parametrize("name,over", [
    ("k1_track", {}), ("k1_walk_deploy", {}), ("g1_track", {"env.observation": "robot"}),
    ("k1_walk_deploy", {"env.future_steps": [1, 3]}), ("k1_kick", {}), ("k1_kick_deploy", {}),
    ("k1_steer", {"env.observation": "robot"}), ("k1_location", {"env.observation": "robot"}),
    ("k1_amp", {"env.observation": "robot"}), ("k1_walk", {})])
def test_layout_sums_to_actor_obs_and_names_are_unique(name, over):
    env, _, _ = make_env(name, {"env.num_envs": 1, **over})
    rows = _rows(env)
    names = [r[0] for r in rows]
    assert len(set(names)) == len(names)
    assert sum(r[1] for r in rows) * env.cfg.obs_history == actor_obs_size(env) <= env.obs_size
    assert all(r[1] > 0 and r[2] >= 0 for r in rows)
    robot = env.cfg.observation == "robot"
    # The robot sets never name a privileged term; the critic part after them is not empty.
    assert not robot or not set(names) & {"anchor_pos", "base_lin_vel", "root_vel", "root_height", "key_body_pos"}
    assert not robot or env.obs_size > actor_obs_size(env)


def test_robot_set_sizes_and_order():
    k1, _, _ = make_env("k1_walk_deploy", {"env.num_envs": 1})
    assert _rows(k1) == K1_TRACK_ROBOT and k1.actor_obs_size == 119      # Booster's deployed K1 set
    assert k1.obs_size == 2 * 119 + 3 + 3 + 9 * 13                     # + anchor pos, lin vel, body poses
    g1, _, _ = make_env("g1_track", {"env.num_envs": 1, "env.observation": "robot"})
    assert g1.actor_obs_size == 5 * 29 + 9
    fut, _, _ = make_env("k1_walk_deploy", {"env.num_envs": 1, "env.future_steps": [1, 3]})
    assert [r[0] for r in _rows(fut)][:4] == ["ref_joint_pos", "ref_joint_vel", "future_ref_joint_pos",
                                              "future_ref_joint_vel"] and fut.actor_obs_size == 119 + 4 * 22
    kick, _, _ = make_env("k1_kick_deploy", {"env.num_envs": 1})
    assert _rows(kick) == [("projected_gravity", 3, 0.05), ("gyro", 3, 0.2), ("joint_pos", 22, 0.01),
                           ("joint_vel", 22, 0.5), ("last_action", 22, 0.0), ("task", 8, 0.0)]
    full, _, _ = make_env("k1_kick", {"env.num_envs": 1})
    assert kick.obs_size == kick.actor_obs_size + full.obs_size
    quiet, _, _ = make_env("k1_kick_deploy", {"env.num_envs": 1, "env.obs_noise_scale": 0.0})
    assert all(r[2] == 0.0 for r in _rows(quiet))
    # Today's full tracking set, by name (BeyondMimic's).
    t, _, _ = make_env("k1_track", {"env.num_envs": 1})
    assert [r[0] for r in _rows(t)] == ["command", "anchor_pos", "anchor_ori", "base_lin_vel", "base_ang_vel",
                                        "joint_pos", "joint_vel", "last_action"]


def test_bad_observation_is_one_clear_error():
    with pytest.raises(ConfigError, match="observation must be one of") as e:
        make_env("k1_track", {"env.observation": "robots"})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="DeepMimicEnv: observation 'robot' is not implemented"):
        make_env("k1_walk", {"env.observation": "robot"})


# ------------------------------------------------------------------------------ tracking
@pytest.fixture(scope="module")
def track():
    env, params, _ = make_env("k1_walk_deploy", {"env.num_envs": 1})
    lib = params.motion
    ref = sample(lib, jnp.int32(0), jnp.float32(0.3))
    nil = jax.tree_util.tree_map(lambda x: x[:0], ref)

    @jax.jit
    def obs(prm, qp, qv, last_action):
        info = {"last_action": last_action, "noise_key": jax.random.PRNGKey(0)}
        return env.build_obs(prm, physics.set_state(prm.model, qp, qv), info, ref, nil)

    rng = np.random.default_rng(0)
    qpos = np.asarray(ref.qpos(lib)) + np.concatenate([[0.03, -0.02, 0.01], 0.05 * rng.normal(size=4),
                                                       0.1 * rng.normal(size=22)])
    qpos[3:7] /= np.linalg.norm(qpos[3:7])
    state = (jnp.asarray(qpos, jnp.float32), jnp.asarray(0.3 * rng.normal(size=env.model.nv), jnp.float32),
             jnp.asarray(rng.uniform(-1, 1, size=22), jnp.float32))
    return env, params, obs, state


def test_tracking_robot_set_has_no_privileged_term(track):
    env, params, obs, (qp, qv, la) = track
    A, sl = env.actor_obs_size, _slices(env)
    o = np.asarray(obs(params, qp, qv, la))
    # Moved in x/y and given another linear velocity: the actor sees nothing of it...
    o_moved = np.asarray(obs(params, qp.at[0:2].add(jnp.array([2.0, -1.5])), qv.at[0:3].add(0.7), la))
    np.testing.assert_allclose(o_moved[:A], o[:A], atol=1e-5)
    # ...the critic does: anchor position (xy offset 2.5 m in the anchor frame) and base linear velocity.
    priv = slice(2 * A, 2 * A + 6)
    assert np.linalg.norm(o_moved[priv][:3] - o[priv][:3]) > 2.0
    assert np.linalg.norm(o_moved[priv][3:] - o[priv][3:]) > 1.0
    # A yaw of the robot alone: the IMU and joint terms stay; the orientation error to the reference changes.
    rz = _qz(1.0)
    o_yaw = np.asarray(obs(params, qp.at[3:7].set(rmath.quat_mul(rz, qp[3:7])), qv, la))
    for n in ("ref_joint_pos", "ref_joint_vel", "gyro", "joint_pos", "joint_vel", "last_action"):
        np.testing.assert_allclose(o_yaw[sl[n]], o[sl[n]], atol=1e-5, err_msg=n)
    assert np.max(np.abs(o_yaw[sl["anchor_ori"]] - o[sl["anchor_ori"]])) > 0.3
    # The terms are what they claim (noise off): gyro = qvel[3:6], joint_pos = q - default, last action.
    q = np.asarray(obs(params.replace(obs_noise_scale=jnp.float32(0.0)), qp, qv, la))
    np.testing.assert_allclose(q[sl["gyro"]], qv[3:6], atol=1e-6)
    np.testing.assert_allclose(q[sl["joint_pos"]], qp[7:] - env.default_joint_pos, atol=1e-6)
    np.testing.assert_array_equal(q[sl["last_action"]], la)


def test_tracking_noise_bounds_per_term(track):
    env, params, obs, (qp, qv, la) = track
    A = env.actor_obs_size
    clean = np.asarray(obs(params.replace(obs_noise_scale=jnp.float32(0.0)), qp, qv, la))
    noisy = np.asarray(obs(params, qp, qv, la))
    np.testing.assert_array_equal(noisy[A:], clean[A:])                 # the critic's part stays clean
    np.testing.assert_allclose(clean[:A], clean[A:2 * A])              # the critic sees the actor terms
    for t, s in zip(env.actor_obs_layout(), _slices(env).values()):
        d = np.abs(noisy[s] - clean[s])
        assert np.all(d <= t["noise"] + 1e-5), t["name"]
        assert (np.all(d > 0) and d.mean() > 0.2 * t["noise"]) if t["noise"] else np.all(d == 0), t["name"]


def test_full_is_the_config_without_the_field_and_robot_selects_the_same_terms(track):
    """``observation: full`` is the default (k1_track as shipped has no such field): the same obs
    bit for bit; the robot set's terms are the full set's, and its critic gets the rest."""
    env_r, _, _, (qp, qv, la) = track
    # the robot env (k1_walk_deploy) has Booster's profile: compare with k1_track on the same profile
    dep = {"env.num_envs": 1, "env.profile": "deploy"}
    envs = [make_env("k1_track", {**dep, **o})[:2] for o in ({}, {"env.observation": "full"})]
    ref = sample(envs[0][1].motion, jnp.int32(0), jnp.float32(0.3))
    nil = jax.tree_util.tree_map(lambda x: x[:0], ref)
    data = jax.jit(physics.set_state)(envs[0][1].model, qp, qv)
    info = {"last_action": la, "noise_key": jax.random.PRNGKey(0)}
    full, full2 = (np.asarray(e.build_obs(p, data, info, ref, nil)) for e, p in envs)
    assert envs[0][0].cfg.observation == "full" and full.tobytes() == full2.tobytes()
    robot = np.asarray(env_r.build_obs(envs[0][1], data, info, ref, nil))
    F, A = envs[0][0].actor_obs_size, env_r.actor_obs_size
    fs, rs = _slices(envs[0][0]), _slices(env_r)
    crit_f, crit_r = full[F:2 * F], robot[A:2 * A]                      # noise-free copies
    np.testing.assert_array_equal(crit_r[:44], crit_f[fs["command"]])
    for n_r, n_f in (("anchor_ori",) * 2, ("gyro", "base_ang_vel"), ("joint_pos",) * 2, ("joint_vel",) * 2,
                     ("last_action",) * 2):
        np.testing.assert_array_equal(crit_r[rs[n_r]], crit_f[fs[n_f]], err_msg=n_r)
    np.testing.assert_array_equal(robot[2 * A:2 * A + 3], crit_f[fs["anchor_pos"]])
    np.testing.assert_array_equal(robot[2 * A + 3:2 * A + 6], crit_f[fs["base_lin_vel"]])
    np.testing.assert_array_equal(robot[2 * A + 6:], full[2 * F:])      # tracked-body poses


# A PPO run on the robot set (k1_walk_deploy: actor input 119, profile and randomisation on):
# tests/test_tracking.py::test_eval_overrides_and_tiny_training_run.


# ------------------------------------------------------------------------------ AMP (kick)
@pytest.fixture(scope="module")
def kick():
    # One observation frame (the config reads 5; stacking: test_obs_history_stacks_frames...).
    env, params, _ = make_env("k1_kick_deploy", {"env.num_envs": 1, "env.obs_history": 1})
    ba, va = env.ball_qpos_adr, env.ball_qvel_adr

    @jax.jit
    def obs(qp, qv, info):
        return env.observation(params, physics.set_state(params.model, qp, qv), info)

    rng = np.random.default_rng(1)
    qpos = np.asarray(env.model.qpos0, np.float64).copy()
    qpos[:7] = np.concatenate([[0.4, -0.3, 0.55], rmath.normalize(jnp.asarray([1.0, 0.05, -0.04, 0.3]))])
    qpos[7:7 + 22] = env.default_joint_pos + 0.1 * rng.normal(size=22)
    qpos[ba:ba + 3] = [1.2, 0.1, 0.07]
    qvel = 0.3 * rng.normal(size=env.model.nv)
    info = {"last_action": jnp.asarray(rng.uniform(-1, 1, size=22), jnp.float32),
            "noise_key": jax.random.PRNGKey(2), "tar_pos": jnp.array([2.5, 0.8, 0.0], jnp.float32)}
    return env, obs, (jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32), info), (ba, va)


def test_kick_robot_set_has_no_privileged_term(kick):
    env, obs, (qp, qv, info), (ba, va) = kick
    A, sl = env.actor_obs_size, _slices(env)
    o = np.asarray(obs(qp, qv, info))
    assert o.shape == (env.obs_size,)
    # The whole scene moved in x/y and turned about the world z axis (robot, ball, target):
    # every actor term stays, the task's too (it is in the robot's heading frame).
    rz, shift = _qz(0.8), jnp.array([3.0, -2.0, 0.0])
    move = lambda p: rmath.quat_rotate(rz, p) + shift  # noqa: E731
    qp2 = (qp.at[0:3].set(move(qp[0:3])).at[3:7].set(rmath.quat_mul(rz, qp[3:7]))
           .at[ba:ba + 3].set(move(qp[ba:ba + 3])))
    qv2 = qv.at[0:3].set(rmath.quat_rotate(rz, qv[0:3])).at[va:va + 3].set(rmath.quat_rotate(rz, qv[va:va + 3]))
    o2 = np.asarray(obs(qp2, qv2, {**info, "tar_pos": move(info["tar_pos"])}))
    np.testing.assert_allclose(o2[:A], o[:A], atol=1e-4)
    # The root's linear velocity is privileged: the actor does not see it, the critic's char obs does.
    o3 = np.asarray(obs(qp, qv.at[0:3].add(jnp.array([0.6, -0.4, 0.2])), info))
    np.testing.assert_array_equal(o3[:A], o[:A])
    assert np.max(np.abs(o3[A:] - o[A:])) > 0.3
    # Each term is what it claims, within its noise width; the task terms are the critic's, noise-free.
    clean = {"projected_gravity": rmath.quat_rotate_inv(rmath.normalize(qp[3:7]), jnp.array([0, 0, -1.0])),
             "gyro": qv[3:6], "joint_pos": qp[7:29] - env.default_joint_pos, "joint_vel": qv[6:28],
             "last_action": info["last_action"], "task": o[env.obs_size - 8:]}
    for t in env.actor_obs_layout():
        d = np.abs(o[sl[t["name"]]] - np.asarray(clean[t["name"]]))
        assert np.all(d <= t["noise"] + 1e-5), t["name"]
        assert (d.mean() > 0.2 * t["noise"]) if t["noise"] else np.all(d == 0), t["name"]


def test_kick_last_action_is_the_normalised_pd_target(kick):
    env = kick[0]
    a = jnp.linspace(-1.0, 1.0, env.action_size)
    info = env.record_action({"step": jnp.int32(3), "noise_key": jax.random.PRNGKey(0)},
                             env.normalized_to_action(a))
    np.testing.assert_allclose(info["last_action"], a, atol=1e-5)
    # Beyond the bounds the env clips the target, and the observed action with it.
    info = env.record_action(info, env.normalized_to_action(3.0 * a))
    np.testing.assert_allclose(info["last_action"], np.clip(3.0 * a, -1, 1), atol=1e-5)


def test_kick_critic_sees_the_full_obs(kick):
    env, obs, (qp, qv, info), _ = kick
    full_env, full_params, _ = make_env("k1_kick", {"env.num_envs": 1})
    assert full_env.cfg.observation == "full"
    data = jax.jit(physics.set_state)(full_params.model, qp, qv)
    full = np.asarray(full_env.observation(full_params, data, info))
    # Same numbers up to float32 rounding: the eager and the jitted program may round an op differently.
    np.testing.assert_allclose(np.asarray(obs(qp, qv, info))[env.actor_obs_size:], full, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_amp_learner_reads_actor_obs_size_and_steps_keep_the_action():
    env, params, agent = make_env("k1_amp", {**TINY, "env.observation": "robot", "agent.disc_hidden": [8],
                                             "agent.disc_buffer_size": 64})
    tr = make_amp_trainer(env, params, agent)
    ts = tr.init(jax.random.PRNGKey(0))
    A = env.actor_obs_size
    assert A == 72 and any(k.shape == (A, 8) for k in jax.tree_util.tree_leaves(ts.actor_params))
    obs = ts.env_state.obs
    np.testing.assert_allclose(tr.policy(ts, obs), tr.policy(ts, obs[:, :A]), atol=1e-6)
    # A step records the policy's normalised action (the PD target mapped back onto [-1, 1]).
    a = jnp.stack([jnp.linspace(-0.9, 0.9, env.action_size), jnp.linspace(1.5, -1.5, env.action_size)])
    st = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0)))(params, ts.env_state, env.normalized_to_action(a))
    live = ~np.asarray(st.done)
    np.testing.assert_allclose(np.asarray(st.info["last_action"])[live], np.clip(a, -1, 1)[live], atol=1e-5)
    assert np.all(np.asarray(st.info["noise_key"]) != np.asarray(ts.env_state.info["noise_key"]))


# ------------------------------------------------------------------------------ history
def test_obs_history_needs_an_actor_critic_split():
    for name, over, msg in (("k1_walk", {}, "DeepMimicEnv: obs_history is not implemented"),
                            ("k1_kick", {}, "KickEnv: obs_history needs an actor/critic split"),
                            ("k1_ase", {"env.observation": "robot"}, "ASE envs do not support obs_history"),
                            ("k1_track", {"env.obs_history": 0}, "obs_history must be an integer >= 1")):
        with pytest.raises(ConfigError, match=msg):
            make_env(name, {"env.num_envs": 1, "env.obs_history": 2, **over})


def test_obs_history_stacks_frames_newest_first_and_restarts_with_the_episode():
    """obs = [a_t, a_t-1, a_t-2 | the one-frame env's rest]; a new episode repeats its first frame;
    the terminal obs continues the old history; sim2sim's ObsStack stacks the same way."""
    from mjxmimic import export, sim2sim
    env, params, _ = make_env("k1_track", {"env.num_envs": 1, "env.obs_history": 3})
    one, params1, _ = make_env("k1_track", {"env.num_envs": 1})
    F = one.actor_obs_size
    assert env.frame_obs_size == F and actor_obs_size(env) == 3 * F and env.obs_size == one.obs_size + 2 * F
    assert export.actor_obs_layout(env) == export.actor_obs_layout(one)          # one frame's layout
    key = jax.random.PRNGKey(3)
    s0, o1 = jax.jit(env.reset)(params, key), jax.jit(one.reset)(params1, key).obs
    np.testing.assert_array_equal(s0.obs[:3 * F], np.tile(np.asarray(o1[:F]), 3))
    np.testing.assert_array_equal(s0.obs[3 * F:], o1[F:])                        # the critic's part unchanged
    step = jax.jit(env.step)
    a = jnp.asarray(env.default_joint_pos)
    s1 = step(params, s0, a)
    s2 = step(params, s1, a)
    f = [np.asarray(s.obs[:F]) for s in (s0, s1, s2)]
    assert not np.allclose(f[1], f[2])
    np.testing.assert_array_equal(s2.obs[:3 * F], np.concatenate([f[2], f[1], f[0]]))
    stack = sim2sim.ObsStack(3)
    for x in f:
        out = stack(x)
    np.testing.assert_array_equal(out, s2.obs[:3 * F])
    sf = step(params.replace(term_ee_height=jnp.float32(-1.0)), s2, a)          # every end effector "fails"
    assert bool(sf.done) and not bool(sf.truncated)
    np.testing.assert_array_equal(sf.terminal_obs[F:3 * F], s2.obs[:2 * F])
    np.testing.assert_array_equal(sf.obs[:3 * F], np.tile(np.asarray(sf.obs[:F]), 3))
    np.testing.assert_array_equal(np.asarray(sf.info["obs_history"]).reshape(-1), sf.obs[:3 * F])
    stack.reset()
    np.testing.assert_array_equal(stack(f[0]), np.tile(f[0], 3))
