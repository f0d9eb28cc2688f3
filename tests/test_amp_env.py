"""AMP env: disc obs (one function for agent and demo), history, learner contract;
steering/location task terms against hand-computed values and heading invariance."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.amp import (AMPEnv, AMPEnvConfig, demo_history, disc_obs, disc_obs_frame_size, history_fill,
                               history_push, static_joint_mask)
from mjxmimic.envs.tasks import (SteeringConfig, SteeringEnv, location_obs, location_reward, steering_obs,
                                 steering_reward)
from mjxmimic.motions.lib import build_motion_lib, sample
from mjxmimic.tools.synthetic import synthetic_clip

N_STEPS = 10


@pytest.fixture(scope="module")
def lib(k1):
    # 30 fps = the control rate, so t0 - k*dt fall on clip frames; walks forward and turns.
    walk = synthetic_clip(k1, frames=61, fps=30.0, loop="wrap", speed=0.4, yaw_rate=0.5, name="walk")
    sway = synthetic_clip(k1, frames=31, fps=30.0, loop="clamp", amp=0.3, freq=0.7, name="sway")
    return build_motion_lib([walk, sway], k1)


@pytest.fixture(scope="module")
def env(k1):
    return AMPEnv(AMPEnvConfig(robot="k1", num_disc_obs_steps=N_STEPS), robot=k1)


@pytest.fixture(scope="module")
def params(env, lib):
    return env.default_params(lib)


def _yaw_rotate_frame(f, yaw, shift):
    """Rotate a history/frame about world z by ``yaw`` and translate by ``shift``."""
    q = rmath.yaw_quat(jnp.float32(yaw))
    return f.replace(root_pos=rmath.quat_rotate(q, f.root_pos) + shift, root_rot=rmath.quat_mul(q, f.root_rot),
                     root_vel=rmath.quat_rotate(q, f.root_vel), root_ang_vel=rmath.quat_rotate(q, f.root_ang_vel),
                     body_pos=rmath.quat_rotate(q, f.body_pos) + shift)


def test_sizes(env, k1):
    f = 3 + 6 + 6 * 22 + 3 * 5 + 3 + 3 + 22
    assert disc_obs_frame_size(22, 5) == f
    assert env.disc_obs_size == N_STEPS * f
    assert env.obs_size == env.char_obs_size()


def test_agent_on_reference_gets_demo_disc_obs(env, params, lib):
    """Physics states set exactly on the reference (MJX kinematics for key bodies, qvel from
    the clip) pushed through the agent's history give the demo's disc obs."""
    mid, t0 = 0, 1.5
    dt = env.control_dt
    times = t0 - dt * np.arange(N_STEPS - 1, -1, -1)
    ref = sample(lib, jnp.zeros(N_STEPS, jnp.int32) + mid, jnp.asarray(times, jnp.float32))

    @jax.jit
    def agent_frames(qpos, qvel):
        def one(q, v):
            return env.hist_frame(env.char_frame(physics.set_state(params.model, q, v)))
        return jax.vmap(one)(qpos, qvel)

    frames = agent_frames(ref.qpos(lib), ref.qvel(lib))
    hist = history_fill(jax.tree_util.tree_map(lambda x: x[0], frames), N_STEPS)
    for k in range(N_STEPS):  # the env's push path, oldest first
        hist = history_push(hist, jax.tree_util.tree_map(lambda x: x[k], frames))
    agent = env.disc_obs(params, hist)
    demo = env.disc_obs(params, env.demo_history(params, jnp.int32(mid), jnp.float32(t0)))
    assert agent.shape == demo.shape == (env.disc_obs_size,)
    np.testing.assert_allclose(np.asarray(agent), np.asarray(demo), atol=2e-4)
    # and the comparison can fail: another time or another clip gives other obs
    other = env.disc_obs(params, env.demo_history(params, jnp.int32(mid), jnp.float32(t0 + 0.3)))
    assert float(jnp.max(jnp.abs(other - agent))) > 0.05
    # the root angular velocity really is in there (a turning clip): yaw rate 0.5 rad/s
    F = env.disc_obs_size // N_STEPS
    newest = np.asarray(agent[(N_STEPS - 1) * F:])
    j, k = env.num_joints, len(env.key_body_ids)
    ang = newest[3 + 6 + 6 * j + 3 * k + 3: 3 + 6 + 6 * j + 3 * k + 6]
    np.testing.assert_allclose(ang, [0, 0, 0.5], atol=1e-3)


def test_disc_obs_layout_for_a_standing_history(env, params, k1):
    """Hand-checkable values: a still character, heading 30 degrees, at (1, 2)."""
    yaw = math.radians(30)
    q = rmath.yaw_quat(jnp.float32(yaw))
    jp = jnp.asarray(k1.default_joint_pos, jnp.float32)
    key = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)
    from mjxmimic.motions.lib import MotionFrame
    f = MotionFrame(root_pos=jnp.array([1.0, 2.0, 0.55]), root_rot=q, root_vel=jnp.zeros(3),
                    root_ang_vel=jnp.zeros(3), joint_pos=jp, joint_vel=jnp.zeros(22),
                    body_pos=key, body_rot=None)
    o = np.asarray(env.disc_obs(params, history_fill(f, N_STEPS))).reshape(N_STEPS, -1)
    np.testing.assert_allclose(o[:, :3], [[0, 0, 0.55]] * N_STEPS, atol=1e-6)     # rel. pos + abs height
    np.testing.assert_allclose(o[:, 3:9], [[1, 0, 0, 0, 0, 1]] * N_STEPS, atol=1e-6)  # heading removed
    j = 22
    kp = o[0, 9 + 6 * j: 9 + 6 * j + 15].reshape(5, 3)
    want = rmath.quat_rotate(rmath.yaw_quat(jnp.float32(-yaw)), key - jnp.array([1.0, 2.0, 0.55]))
    np.testing.assert_allclose(kp, np.asarray(want), atol=1e-5)
    np.testing.assert_allclose(o[:, 9 + 6 * j + 15:], 0.0, atol=1e-7)            # all velocities 0


def test_disc_obs_invariant_to_world_yaw_and_shift(env, params):
    h = env.demo_history(params, jnp.int32(0), jnp.float32(0.9))
    a = env.disc_obs(params, h)
    b = env.disc_obs(params, _yaw_rotate_frame(h, 2.1, jnp.array([3.0, -4.0, 0.0])))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
    g = disc_obs(h, env.joint_axes, global_obs=True)  # global obs does see the rotation
    g2 = disc_obs(_yaw_rotate_frame(h, 2.1, jnp.zeros(3)), env.joint_axes, global_obs=True)
    assert float(jnp.max(jnp.abs(g - g2))) > 0.1


def test_static_joints_leave_the_disc_obs(env, k1):
    """A joint the style clips hold still (within disc_static_joint_tol) carries nothing the
    discriminator may use: agent jitter on it leaves the disc obs unchanged; a moving joint's
    does not; tol 0 keeps it (MimicKit)."""
    still = 3
    walk = synthetic_clip(k1, frames=61, fps=30.0, loop="wrap", speed=0.4, yaw_rate=0.5, name="walk")
    jp = np.array(walk.joint_pos)
    jp[:, still] = 0.2 + 1e-4 * np.sin(np.arange(len(jp)))   # a 2e-4 rad span, below the 1e-3 default
    lib_s = build_motion_lib([walk.replace(joint_pos=jp)], k1)
    mask = np.asarray(static_joint_mask(lib_s.joint_pos, 1e-3))
    assert mask[still] == 0 and mask.sum() == k1.num_joints - 1
    assert np.all(np.asarray(static_joint_mask(lib_s.joint_pos, 0.0)) == 1)
    p = env.default_params(lib_s)
    h = env.demo_history(p, jnp.int32(0), jnp.float32(1.0))

    def jitter(j, dq, dv):
        return h.replace(joint_pos=h.joint_pos.at[:, j].add(dq), joint_vel=h.joint_vel.at[:, j].add(dv))
    base = env.disc_obs(p, h)
    np.testing.assert_array_equal(np.asarray(env.disc_obs(p, jitter(still, 0.01, 0.3))), np.asarray(base))
    assert float(jnp.max(jnp.abs(env.disc_obs(p, jitter(still + 1, 0.01, 0.3)) - base))) > 0.009
    keep = AMPEnv(AMPEnvConfig(robot="k1", num_disc_obs_steps=N_STEPS, disc_static_joint_tol=0.0), robot=k1)
    pk = keep.default_params(lib_s)
    assert float(jnp.max(jnp.abs(keep.disc_obs(pk, jitter(still, 0.01, 0.3)) - keep.disc_obs(pk, h)))) > 0.009


def test_demo_disc_obs(env, params, lib):
    d = jax.jit(env.demo_disc_obs, static_argnums=2)(params, jax.random.PRNGKey(3), 64)
    assert d.shape == (64, env.disc_obs_size) and bool(jnp.all(jnp.isfinite(d)))
    # t0 - k*dt before a clamped clip's start repeats its first frame: still finite and valid
    h = demo_history(lib, jnp.int32(1), jnp.float32(0.0), N_STEPS, env.control_dt, env.key_body_ids)
    np.testing.assert_allclose(np.asarray(h.root_pos[0]), np.asarray(h.root_pos[-1]), atol=1e-6)


# ---------------------------------------------------------------------------------------
# a task env end to end (one compile): reset, step, pre-reset disc obs, task obs
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def steer(k1, lib):
    # one control step per episode: every step ends by timeout, exercising the auto-reset
    env = SteeringEnv(SteeringConfig(robot="k1", episode_length=1 / 30), robot=k1)
    params = env.default_params(lib)

    @jax.jit
    def run(keys):
        s0 = jax.vmap(env.reset, in_axes=(None, 0))(params, keys)
        s1 = jax.vmap(env.step, in_axes=(None, 0, 0))(params, s0, s0.physics.ctrl)
        return s0, s1
    s0, s1 = run(jax.random.split(jax.random.PRNGKey(0), 6))
    return env, params, s0, s1


def test_task_env_contract(steer):
    env, params, s0, s1 = steer
    assert env.obs_size == env.char_obs_size() + 5
    assert s0.obs.shape == (6, env.obs_size) and s1.info["disc_obs"].shape == (6, env.disc_obs_size)
    assert bool(jnp.all(jnp.isfinite(s1.info["disc_obs"]))) and bool(jnp.all(jnp.isfinite(s1.obs)))
    # reset fills the history from the reference (RSI): its disc obs is the demo's
    want = jax.vmap(lambda m, t: env.disc_obs(params, env.demo_history(params, m, t)))(
        s0.info["motion_id"], s0.info["motion_time0"])
    np.testing.assert_allclose(np.asarray(s0.info["disc_obs"]), np.asarray(want), atol=1e-6)
    # task obs = steering obs of the root and the drawn target
    root_rot = rmath.normalize(s0.physics.qpos[:, 3:7])
    t = steering_obs(root_rot, s0.info["tar_dir"], s0.info["tar_speed"], s0.info["face_dir"])
    np.testing.assert_allclose(np.asarray(s0.obs[:, -5:]), np.asarray(t), atol=1e-6)
    c = env.cfg
    assert bool(jnp.all((s0.info["tar_speed"] >= c.tar_speed_min) & (s0.info["tar_speed"] <= c.tar_speed_max)))


def test_disc_obs_is_the_pre_reset_one(steer):
    env, params, s0, s1 = steer
    assert bool(jnp.all(s1.done)) and bool(jnp.all(s1.truncated))
    fresh = jax.vmap(lambda h: env.disc_obs(params, h))(s1.info["amp_hist"])           # the new episode's history
    kept = s1.info["disc_obs"]                                      # the step just taken
    assert float(jnp.min(jnp.max(jnp.abs(kept - fresh), axis=-1))) > 1e-3
    # the kept sample's older frames are the previous episode's history shifted by one
    F = env.disc_obs_size // N_STEPS
    prev = s0.info["disc_obs"].reshape(6, N_STEPS, F)
    # heights (index 2) do not depend on the heading frame
    np.testing.assert_allclose(np.asarray(kept.reshape(6, N_STEPS, F)[:, :-1, 2]), np.asarray(prev[:, 1:, 2]),
                               atol=1e-6)
    assert bool(jnp.all((s1.reward >= 0) & (s1.reward <= 1.0)))  # steering reward: weights sum to 1


# ---------------------------------------------------------------------------------------
# task terms (pure)
# ---------------------------------------------------------------------------------------
def test_steering_reward_hand_computed():
    dt = 1 / 30
    yaw = math.radians(60)
    rot = rmath.yaw_quat(jnp.float32(yaw))
    p0 = jnp.array([1.0, 1.0, 0.5])
    p1 = p0 + jnp.array([0.5 * dt, 0.0, 0.01])                       # 0.5 m/s along x
    d, f = jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])
    r = steering_reward(p1, p0, rot, d, jnp.float32(1.0), f, dt, 0.5, 0.7, 0.3)
    want = 0.7 * math.exp(-0.5 * 0.25) + 0.3 * math.cos(yaw)
    assert float(r) == pytest.approx(want, abs=1e-5)
    back = steering_reward(p0 - (p1 - p0), p0, rot, d, jnp.float32(1.0), f, dt, 0.5, 0.7, 0.3)
    assert float(back) == pytest.approx(0.3 * math.cos(yaw), abs=1e-5)  # moving away: no target term
    away = steering_reward(p1, p0, rmath.yaw_quat(jnp.float32(math.pi)), d, jnp.float32(1.0), f, dt)
    assert float(away) == pytest.approx(0.7 * math.exp(-0.5 * 0.25), abs=1e-5)  # facing away: no facing term


def test_location_reward_hand_computed():
    dt = 1 / 30
    rot = rmath.yaw_quat(jnp.float32(0.0))
    p0 = jnp.array([0.0, 0.0, 0.5])
    tar = jnp.array([3.0, 4.0, 0.0])                                  # 5 m away
    p1 = p0 + jnp.array([0.3, 0.4, 0.0]) * dt                         # 0.5 m/s toward it
    r = location_reward(p1, p0, rot, tar, 0.6, dt)
    d2 = float(jnp.sum((tar - p1)[:2] ** 2))
    want = 0.5 * math.exp(-0.5 * d2) + 0.4 * math.exp(-4.0 * 0.1 ** 2) + 0.1 * 0.6   # facing: cos = 3/5
    assert float(r) == pytest.approx(want, abs=1e-5)
    near = location_reward(tar + jnp.array([0.5, 0.0, 0.5]), tar + jnp.array([0.5, 0.0, 0.5]), rot, tar, 0.6, dt)
    assert float(near) == pytest.approx(0.5 * math.exp(-0.5 * 0.25) + 0.4 + 0.1, abs=1e-5)  # d² < 0.5


def test_task_obs_heading_invariance():
    key = jax.random.PRNGKey(5)
    rot = rmath.normalize(jax.random.normal(key, (4,)))
    pos = jnp.array([1.0, -2.0, 0.6])
    tar = jnp.array([4.0, 1.0, 0.0])
    d, f = jnp.array([0.6, 0.8]), jnp.array([0.0, 1.0])
    a1, b1 = location_obs(pos, rot, tar), steering_obs(rot, d, jnp.float32(0.7), f)
    q = rmath.yaw_quat(jnp.float32(-2.3))
    R = lambda v: rmath.quat_rotate(q, v)  # noqa: E731
    R2 = lambda v: R(jnp.concatenate([v, jnp.zeros(1)]))[:2]  # noqa: E731
    a2 = location_obs(R(pos) + jnp.array([5.0, 5.0, 0.0]), rmath.quat_mul(q, rot), R(tar) + jnp.array([5.0, 5.0, 0.0]))
    b2 = steering_obs(rmath.quat_mul(q, rot), R2(d), jnp.float32(0.7), R2(f))
    np.testing.assert_allclose(np.asarray(a1), np.asarray(a2), atol=1e-5)
    np.testing.assert_allclose(np.asarray(b1), np.asarray(b2), atol=1e-5)
    assert float(jnp.max(jnp.abs(location_obs(pos, rot, R(tar)) - a1))) > 0.1  # not trivially constant


def test_one_episode_template():
    """reset/step are CharEnv's alone; AMP, task and kick envs only fill its hooks."""
    from mjxmimic.envs.char import CharEnv
    from mjxmimic.envs.deepmimic import DeepMimicEnv
    from mjxmimic.envs.kick import KickEnv
    from mjxmimic.envs.tasks import LocationEnv
    for cls in (DeepMimicEnv, AMPEnv, SteeringEnv, LocationEnv, KickEnv):
        assert cls.reset is CharEnv.reset and cls.step is CharEnv.step, cls.__name__
    assert not CharEnv.task_key and AMPEnv.task_key and KickEnv.task_key
