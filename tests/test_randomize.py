"""Domain randomisation (mjxmimic.envs.randomize), the actuator delay of physics.pd_step and the
env.profile / env.randomize config fields. Env-level tests run on a tiny two-legged robot
(compiles in seconds); the shipped robots are only built, never compiled."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import yaml
from mujoco import mjx

from mjxmimic.envs import randomize
from mjxmimic.envs.char import CharConfig, CharEnv
from mjxmimic.envs.randomize import RandomizeConfig
from mjxmimic.envs.registry import ConfigError, load_config
from mjxmimic.robots import robot_from_spec
from mjxmimic.robots.profiles import load_profile
from mjxmimic.robots.spec import load_spec

# Effort limits far above what the tests command: with a clamped actuator force, MJX's and MuJoCo
# C's implicitfast integration differ (measured: 0.05-0.25 rad/s after 4 steps), which would
# hide what the C comparison checks.
TINY_XML = """<mujoco model="tiny">
  <compiler angle="radian"/>
  <option timestep="0.005" iterations="4" ls_iterations="8" integrator="implicitfast"/>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 0.05"/>
    <body name="trunk" pos="0 0 0.5">
      <freejoint name="root"/>
      <geom name="trunk_col" type="box" size="0.1 0.1 0.1" mass="5" contype="0" conaffinity="0"/>
      <body name="left_leg" pos="0 0.06 -0.1">
        <joint name="left_hip" axis="0 1 0" range="-1 1"/>
        <geom name="left_shin" type="capsule" fromto="0 0 0 0 0 -0.3" size="0.02" mass="1" contype="0" conaffinity="0"/>
        <body name="left_foot" pos="0 0 -0.32">
          <geom name="left_foot_col" type="box" size="0.06 0.03 0.02" mass="0.3"/>
        </body>
      </body>
      <body name="right_leg" pos="0 -0.06 -0.1">
        <joint name="right_hip" axis="0 1 0" range="-1 1"/>
        <geom name="right_shin" type="capsule" fromto="0 0 0 0 0 -0.3" size="0.02" mass="1" contype="0" conaffinity="0"/>
        <body name="right_foot" pos="0 0 -0.32">
          <geom name="right_foot_col" type="box" size="0.06 0.03 0.02" mass="0.3"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <general name="left_hip" joint="left_hip" ctrlrange="-1 1" ctrllimited="true" forcelimited="true"
             forcerange="-100 100" biastype="affine" gainprm="50" biasprm="0 -50 -2"/>
    <general name="right_hip" joint="right_hip" ctrlrange="-1 1" ctrllimited="true" forcelimited="true"
             forcerange="-100 100" biastype="affine" gainprm="50" biasprm="0 -50 -2"/>
  </actuator>
</mujoco>
"""

TINY_SPEC = {
    "name": "tiny", "source": {"urdf": "none.urdf"}, "root_body": "trunk", "sim": {"timestep": 0.005},
    "joints": {"left_hip": {"armature": 0.01, "kp": 50.0, "kd": 2.0}, "right_hip": {"armature": 0.01, "kp": 50.0, "kd": 2.0}},
    "collision": [], "key_bodies": ["left_foot", "right_foot"], "contact_bodies": ["left_foot", "right_foot"],
    "feet": ["left_foot", "right_foot"], "default_pose": {"left_hip": 0.1},
    "profiles": {"deploy": {"source": "a test", "control_freq": 50, "sim_timestep": 0.0025,
                            "action_scale": {"rule": "effort_over_kp", "factor": 0.25},
                            "joints": {".*_hip": {"kp": 30, "kd": 1, "effort": 10, "armature": 0.02}},
                            "default_pos": {"right_hip": -0.2}}},
}

N = 4          # substeps: 50 Hz over 0.005 s
ALL = RandomizeConfig(friction=(0.3, 0.6), restitution=(0.0, 0.5), joint_offset=(-0.01, 0.01),
                      com_offset=(0.025, 0.05, 0.05), mass_scale=(0.9, 1.1), kp_scale=(0.8, 1.2),
                      kd_scale=(0.8, 1.2), delay=(2, 8), push_interval=(1.0, 3.0))
# Every randomisation on at its identity value (the nominal floor/foot friction is 1, the
# default contact damping ratio 1 = restitution 0) and pushes too rare to happen.
IDENTITY = RandomizeConfig(friction=(1.0, 1.0), restitution=(0.0, 0.0), joint_offset=(0.0, 0.0),
                           com_offset=(0.0, 0.0, 0.0), mass_scale=(1.0, 1.0), kp_scale=(1.0, 1.0),
                           kd_scale=(1.0, 1.0), delay=(0, 0), push_interval=(100.0, 100.0))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.xml").write_text(TINY_XML)
    (d / "robot.yaml").write_text(yaml.safe_dump(TINY_SPEC))
    spec = load_spec(d / "robot.yaml")
    return robot_from_spec(spec, spec.xml_path)


def _env(tiny, **kw):
    return CharEnv(CharConfig(robot="tiny", control_freq=50.0, episode_length=1.0, **kw), robot=tiny, model=tiny.model)


def _rollout(env, keys, actions):
    """Reset and steps in one compiled function (one compile per env): the states, reset first."""
    p = env.default_params()

    @jax.jit
    def run(keys, actions):
        s0 = jax.vmap(env.reset, in_axes=(None, 0))(p, keys)
        step = lambda s, a: (lambda s1: (s1, s1))(jax.vmap(env.step, in_axes=(None, 0, 0))(p, s, a))  # noqa: E731
        return s0, jax.lax.scan(step, s0, actions)[1]

    s0, ss = run(keys, jnp.stack(actions))
    return [s0] + [jax.tree_util.tree_map(lambda x: x[i], ss) for i in range(len(actions))]


@pytest.fixture(scope="module")
def keys():
    return jax.random.split(jax.random.PRNGKey(3), 2)


@pytest.fixture(scope="module")
def actions(tiny):
    return [jnp.full((2, 2), 0.3 * (-1) ** i, jnp.float32) + jnp.array([[0.0], [0.1]]) for i in range(3)]


@pytest.fixture(scope="module")
def off_states(tiny, keys, actions):
    return _rollout(_env(tiny), keys, actions)


def test_off_is_the_plain_env(off_states, tiny, keys):
    env = _env(tiny)
    assert env.dr_layout is None and "dr" not in off_states[0].info
    # No extra key is drawn: reset keeps the last of split(key, 2) (the env contract's draw).
    np.testing.assert_array_equal(off_states[0].key, jax.vmap(lambda k: jax.random.split(k, 2)[-1])(keys))


def test_identity_randomisation_gives_the_same_physics(off_states, tiny, keys, actions):
    """Every DR path on at identity values reproduces the off env's physics bit for bit
    (env_model, the delay line at d = 0, the offset); only the keys differ."""
    on = _rollout(_env(tiny, randomize=IDENTITY), keys, actions)
    for a, b in zip(off_states, on):
        for f in ("qpos", "qvel", "xpos", "ctrl"):
            np.testing.assert_array_equal(getattr(a.physics, f), getattr(b.physics, f), err_msg=f)
        np.testing.assert_array_equal(a.obs, b.obs)
    assert not np.any(np.asarray(on[-1].done))


def _c_model(tiny, lay, dr, e):
    """MuJoCo C model of env e with its randomised values, set by hand (not by env_model)."""
    import copy
    m = copy.deepcopy(tiny.model)
    v = {k: np.asarray(x[e], np.float64) for k, x in dr.items()}
    m.body_ipos[lay.com_body_id] += v["com_offset"]
    m.body_sameframe[lay.com_body_id] = 0   # C skips ipos for bodies compiled with ipos = 0
    m.body_mass[1:] *= v["mass_scale"]
    m.body_inertia[1:] *= v["mass_scale"][:, None]
    m.actuator_gainprm[:, 0] *= v["kp_scale"]
    m.actuator_biasprm[:, 1] *= v["kp_scale"]
    m.actuator_biasprm[:, 2] *= v["kd_scale"]
    return m


def test_randomised_env_matches_a_hand_stepped_mujoco_c_rollout(tiny):
    """8 envs, 3 control steps in the air (no contacts, so MJX and C agree to float32 precision):
    each env = MuJoCo C with its sampled CoM, masses and gains, the calibration offset added
    to every target, and physics step i applying the target of control step floor((i − d)/4)
    (the reset pose before the first), d up to 8 physics steps = 2 control steps."""
    cfg = RandomizeConfig(friction=(0.3, 0.6), restitution=(0.0, 0.5), joint_offset=(-0.05, 0.05),
                          com_offset=(0.025, 0.05, 0.05), mass_scale=(0.8, 1.2), kp_scale=(0.8, 1.2),
                          kd_scale=(0.8, 1.2), delay=(0, 8), push_interval=(100.0, 100.0))
    q0 = tiny.default_qpos.copy()
    q0[2] += 0.3
    env = _env(tiny, randomize=cfg, init_pose=tuple(q0))
    rng = np.random.default_rng(0)
    acts = [jnp.asarray(rng.uniform(-0.6, 0.6, (8, 2)), jnp.float32) for _ in range(3)]
    s = _rollout(env, jax.random.split(jax.random.PRNGKey(5), 8), acts)
    dr = s[0].info["dr"]
    d = np.asarray(dr["delay"])
    assert set(dr) == {"friction", "restitution", "joint_offset", "com_offset", "mass_scale", "kp_scale",
                       "kd_scale", "delay", "prev_targets", "push_countdown"}
    assert d.min() >= 0 and d.max() <= 8 and np.any(d > N) and np.any(d < N)   # some span two control steps
    f = np.asarray(dr["friction"])
    assert len(set(f.tolist())) == 8 and np.all((0.3 <= f) & (f <= 0.6))
    assert dr["prev_targets"].shape == (8, 2, 2)                                 # H = ceil(8 / 4)
    for e in range(8):
        m = _c_model(tiny, env.dr_layout, dr, e)
        off = np.asarray(dr["joint_offset"][e], np.float64)
        targets = [q0[tiny.qpos_idx] + off] + [np.asarray(a[e], np.float64) + off for a in acts]
        c = mujoco.MjData(m)
        c.qpos[:] = q0
        for step in range(3):
            for k in range(N):
                src = (step * N + k - int(d[e])) // N          # control step whose target applies
                c.ctrl[:] = targets[max(src, -1) + 1]
                mujoco.mj_step(m, c)
            got = s[step + 1].physics
            np.testing.assert_allclose(got.qvel[e], c.qvel, rtol=0, atol=2e-4, err_msg=f"env {e} step {step}")
            np.testing.assert_allclose(got.qpos[e], c.qpos, rtol=0, atol=2e-6, err_msg=f"env {e} step {step}")
    # Kept for the episode; the delay line shifts; the pushes count down.
    np.testing.assert_array_equal(s[3].info["dr"]["friction"], dr["friction"])
    np.testing.assert_allclose(s[3].info["dr"]["prev_targets"][:, 1], np.asarray(acts[1]) + dr["joint_offset"], atol=1e-6)
    np.testing.assert_array_equal(s[3].info["dr"]["push_countdown"], dr["push_countdown"] - 3)
    # The calibration offset is not observed: the reset obs is the plain env's of the same state.
    reset_obs = jax.vmap(lambda st: env.observation(None, st, {}))(s[0].physics)
    np.testing.assert_array_equal(reset_obs, s[0].obs)


@pytest.fixture(scope="module")
def tiny_mjx(tiny):
    return mjx.put_model(tiny.model)


def _changed(a, b):
    """Names of the mjx.Model fields that differ, with the rows that differ."""
    out = {}
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, (np.ndarray, jax.Array)) and x.shape and not np.array_equal(np.asarray(x), np.asarray(y)):
            diff = np.asarray(x) != np.asarray(y)
            out[f.name] = (sorted(set(np.nonzero(diff)[0].tolist())),
                           sorted(set(np.nonzero(diff)[1].tolist())) if diff.ndim > 1 else None)
    return out


@pytest.mark.parametrize("field, value, expect", [
    ("friction", (0.3, 0.6), {"geom_friction": ([0, 3, 5], [0])}),       # floor + feet, sliding only
    ("restitution", (0.2, 0.5), {"geom_solref": ([0, 3, 5], [1])}),
    ("com_offset", (0.025, 0.05, 0.05), {"body_ipos": ([1], [0, 1, 2])}),
    ("mass_scale", (0.9, 1.1), {"body_mass": (list(range(1, 6)), None), "body_inertia": (list(range(1, 6)), [0, 1, 2])}),
    ("kp_scale", (0.8, 1.2), {"actuator_gainprm": ([0, 1], [0]), "actuator_biasprm": ([0, 1], [1])}),
    ("kd_scale", (0.8, 1.2), {"actuator_biasprm": ([0, 1], [2])}),
    ("joint_offset", (-0.01, 0.01), {}),
    ("delay", (2, 8), {}),
    ("push_interval", (1.0, 3.0), {}),
])
def test_each_randomisation_changes_only_its_fields(tiny, tiny_mjx, field, value, expect):
    cfg = RandomizeConfig(**{field: value})
    lay = randomize.make_layout(cfg, tiny, tiny.model, N, 0.02)
    dr = randomize.sample(cfg, lay, jax.random.PRNGKey(0), jnp.zeros(2))
    m = randomize.env_model(tiny_mjx, lay, dr)
    assert _changed(tiny_mjx, m) == expect
    if field == "friction":
        np.testing.assert_allclose(np.asarray(m.geom_friction)[[0, 3, 5], 0], float(dr["friction"]))
    if field == "kp_scale":
        np.testing.assert_allclose(-np.asarray(m.actuator_biasprm)[:, 1], 50 * np.asarray(dr["kp_scale"]), rtol=1e-6)
    if field == "joint_offset":
        np.testing.assert_array_equal(randomize.pd_target(jnp.ones(2), dr), 1 + dr["joint_offset"])
        assert np.all(np.abs(np.asarray(dr["joint_offset"])) <= 0.01)
    assert randomize.sample(RandomizeConfig(), lay, jax.random.PRNGKey(0), jnp.zeros(2)) == {}


def test_restitution_dampratio_closed_form():
    # e = exp(-π ζ / sqrt(1 - ζ²)) for an underdamped oscillator.
    for e in (0.1, 0.3, 0.5):
        z = float(randomize.restitution_dampratio(jnp.float32(e)))
        assert math.exp(-math.pi * z / math.sqrt(1 - z * z)) == pytest.approx(e, rel=1e-5)
    assert float(randomize.restitution_dampratio(jnp.float32(0.0))) == 1.0


def test_push_adds_root_velocity_at_the_interval(tiny):
    cfg = RandomizeConfig(push_interval=(0.04, 0.1), push_vel=(0.5, 0.5, 0.2, 0.5, 0.5, 0.8))
    lay = randomize.make_layout(cfg, tiny, tiny.model, N, 0.02)
    assert lay.push_steps == pytest.approx((2.0, 5.0))
    qvel = jnp.arange(tiny.model.nv, dtype=jnp.float32)
    q1, dr1 = randomize.push(cfg, lay, jax.random.PRNGKey(1), qvel, {"push_countdown": jnp.int32(3)})
    np.testing.assert_array_equal(q1, qvel)
    assert int(dr1["push_countdown"]) == 2
    pushes = []
    for i in range(20):
        q2, dr2 = randomize.push(cfg, lay, jax.random.PRNGKey(i), qvel, {"push_countdown": jnp.int32(1)})
        dv = np.asarray(q2 - qvel)
        assert np.all(np.abs(dv[:6]) <= np.array(cfg.push_vel) + 1e-6) and np.all(dv[6:] == 0)
        assert 2 <= int(dr2["push_countdown"]) <= 5
        pushes.append(dv[:6])
    assert np.all(np.std(pushes, axis=0) > 0)


# ---- the ramp (a randomisation curriculum) ---------------------------------------------
def test_ramp_strength_closed_form():
    its = jnp.array([0, 99, 100, 150, 200, 300, 10_000])
    np.testing.assert_allclose(randomize.ramp_strength((100, 300), its), [0, 0, 0, 0.25, 0.5, 1, 1], atol=1e-7)
    np.testing.assert_array_equal(randomize.ramp_strength((50, 50), jnp.array([0, 49, 50, 51])), [0, 0, 1, 1])


def test_strength_pulls_every_sample_toward_nominal(tiny):
    lay = randomize.make_layout(ALL, tiny, tiny.model, N, 0.02)
    assert lay.friction0 == 1.0                    # the tiny model's floor and feet
    key, t0 = jax.random.PRNGKey(5), jnp.zeros(2)
    full = randomize.sample(ALL, lay, key, t0)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(
        lambda a, b: bool(jnp.allclose(a, b, atol=1e-6)), randomize.sample(ALL, lay, key, t0, jnp.float32(1.0)), full))
    zero = randomize.sample(ALL, lay, key, t0, jnp.float32(0.0))
    nominal = {"friction": 1.0, "restitution": 0.0, "joint_offset": 0.0, "com_offset": 0.0, "mass_scale": 1.0,
               "kp_scale": 1.0, "kd_scale": 1.0, "delay": 0, "prev_targets": 0.0}
    for k, v in nominal.items():
        np.testing.assert_allclose(zero[k], np.broadcast_to(v, np.shape(full[k])), atol=1e-7, err_msg=k)
    half = randomize.sample(ALL, lay, key, t0, jnp.float32(0.5))
    for k, v in nominal.items():
        if k not in ("delay", "prev_targets"):
            np.testing.assert_allclose(half[k], v + 0.5 * (np.asarray(full[k]) - v), atol=1e-6, err_msg=k)
    assert int(half["delay"]) == round(0.5 * int(full["delay"]))
    assert int(half["push_countdown"]) == int(full["push_countdown"])   # when pushes come is not scaled
    # The env applies them: at strength 0 the randomised model is the nominal one.
    m0 = randomize.env_model(mjx.put_model(tiny.model), lay, zero)
    np.testing.assert_allclose(m0.geom_friction, tiny.model.geom_friction, atol=1e-7)
    np.testing.assert_allclose(m0.body_ipos, tiny.model.body_ipos, atol=1e-7)


def test_strength_scales_the_push(tiny):
    cfg = RandomizeConfig(push_interval=(0.04, 0.1))
    lay = randomize.make_layout(cfg, tiny, tiny.model, N, 0.02)
    qvel, dr, k = jnp.zeros(tiny.model.nv), {"push_countdown": jnp.int32(1)}, jax.random.PRNGKey(2)
    full = np.asarray(randomize.push(cfg, lay, k, qvel, dr)[0])
    assert np.all(np.abs(full[:6]) > 0)
    np.testing.assert_allclose(randomize.push(cfg, lay, k, qvel, dr, jnp.float32(0.5))[0], 0.5 * full, atol=1e-7)
    np.testing.assert_array_equal(randomize.push(cfg, lay, k, qvel, dr, jnp.float32(0.0))[0], 0.0)


def test_trainer_ramps_the_randomisation(tiny):
    """The trainer rolls iteration i out at ramp_strength(i) (logged), evaluation stays at full
    strength, and an env without a ramp has no schedule metric."""
    from mjxmimic.learning.ppo import PPOConfig, make_trainer
    cfg = PPOConfig(num_envs=2, steps_per_iter=4, actor_hidden=(8,), critic_hidden=(8,), actor_epochs=1,
                    critic_epochs=1)
    env = _env(tiny, randomize=dataclasses.replace(ALL, ramp=(1, 3)))
    params = env.default_params()
    assert params.dr_strength is None
    tr = make_trainer(env, params, cfg)
    ts = tr.init(jax.random.PRNGKey(0))
    assert int(ts.env_state.info["dr"]["delay"].max()) == 0      # reset at iteration 0: strength 0
    seen = []
    for _ in range(4):
        ts, m = tr.iteration(ts)
        seen.append(float(m["schedule/dr_strength"]))
    assert seen == [0.0, 0.0, 0.5, 1.0]
    p_full, logged = env.schedule_apply(params, 1000)
    assert float(p_full.dr_strength) == 1.0 and float(logged["dr_strength"]) == 1.0
    assert env.schedule_apply(params, 0)[0].dr_strength == 0.0
    plain = _env(tiny, randomize=ALL)
    assert plain.schedule_apply(params, 0) == (params, {})


def test_adaptive_strength_closed_form():
    """The strength steps up only when the iteration's ended episodes reach the threshold rate,
    never falls, stops at 1; no ended episode is no evidence (rate 0)."""
    succ = RandomizeConfig(friction=(0.3, 0.6), ramp_adaptive=(0.5, 0.25))
    surv = dataclasses.replace(succ, ramp_signal="survival")
    s, f, t = jnp.array([1, 0, 0, 0]), jnp.array([0, 1, 1, 0]), jnp.array([0, 0, 1, 0])   # 1 of 4 succeeded, 2 failed
    st, rate = randomize.adaptive_strength(jnp.float32(0.5), s, f, t, succ)
    assert float(rate) == 0.25 and float(st) == 0.5                      # below 0.5: holds
    st, rate = randomize.adaptive_strength(jnp.float32(0.5), s, f, t, surv)
    assert float(rate) == 0.5 and float(st) == 0.75                      # 2 of 4 did not fail: steps
    st, _ = randomize.adaptive_strength(jnp.float32(0.9), s, f, t, surv)
    assert float(st) == 1.0                                              # capped
    z = jnp.zeros(4)
    st, rate = jax.jit(lambda *a: randomize.adaptive_strength(*a, surv))(jnp.float32(0.5), z, z, z)
    assert float(rate) == 0.0 and float(st) == 0.5
    for bad, msg in [({"ramp": (1, 3)}, "exclude each other"), ({"ramp_adaptive": (1.5, 0.1)}, "ramp_adaptive must"),
                     ({"ramp_adaptive": (0.5, 0.0)}, "ramp_adaptive must"), ({"ramp_signal": "reward"}, "ramp_signal")]:
        with pytest.raises(ValueError, match=msg):
            dataclasses.replace(succ, **bad)
    from mjxmimic.envs.tracking import TrackingConfig
    with pytest.raises(ValueError, match="not available in the tracking env"):
        TrackingConfig(robot="k1", randomize=succ)


def test_trainer_adapts_the_randomisation(tiny):
    """With ramp_adaptive the trainer keeps the strength in its curriculum state: it starts at 0
    (the reset), rises by the step after each iteration that reached the threshold (0 here: every
    one), and is what the next iteration rolls out with; evaluation stays at full strength."""
    from mjxmimic.learning.ppo import PPOConfig, has_curriculum, make_trainer
    cfg = PPOConfig(num_envs=2, steps_per_iter=4, actor_hidden=(8,), critic_hidden=(8,), actor_epochs=1,
                    critic_epochs=1)
    env = _env(tiny, randomize=dataclasses.replace(ALL, ramp_adaptive=(0.0, 0.4)))
    assert has_curriculum(env) and not has_curriculum(_env(tiny, randomize=ALL))
    params = env.default_params()
    tr = make_trainer(env, params, cfg)
    ts = tr.init(jax.random.PRNGKey(0))
    assert float(ts.curriculum) == 0.0 and int(ts.env_state.info["dr"]["delay"].max()) == 0
    seen = []
    for _ in range(3):
        ts, m = tr.iteration(ts)
        seen.append(round(float(m["curriculum/dr_strength"]), 6))
    assert seen == [0.4, 0.8, 1.0] and float(ts.curriculum) == 1.0
    assert env.schedule_apply(params, 5) == (params, {}) and params.dr_strength is None


# ---- the critic's privileged randomisation values (dr_obs, env.critic_dr_obs) -----------
def test_dr_obs_closed_form():
    """Each active term over its full range; a zero width gives 0; the delay line and the push
    countdown are left out; jit and vmap safe."""
    cfg = RandomizeConfig(friction=(0.4, 0.8), restitution=(0.2, 0.2), joint_offset=(-0.02, 0.02),
                          com_offset=(0.02, 0.0, 0.05), mass_scale=(0.9, 1.1), kp_scale=(0.8, 1.2), delay=(2, 6),
                          push_interval=(1.0, 3.0))
    lay = randomize.Layout(contact_geom_ids=np.array([0], np.int32), link_body_ids=np.arange(1, 4, dtype=np.int32),
                           com_body_id=1, num_joints=2, num_substeps=4, history=2, push_steps=(50.0, 150.0),
                           friction0=1.0)
    dr = {"friction": jnp.float32(0.5), "restitution": jnp.float32(0.2), "joint_offset": jnp.array([0.01, -0.02]),
          "com_offset": jnp.array([0.01, 0.03, -0.05]), "mass_scale": jnp.array([1.0, 1.1, 0.95]),
          "kp_scale": jnp.array([0.8, 1.0]), "delay": jnp.int32(5), "prev_targets": jnp.ones((2, 2)),
          "push_countdown": jnp.int32(7)}
    want = [-0.5, 0.0, 0.5, -1.0, 0.5, 0.0, -1.0, 0.0, 1.0, -0.5, -1.0, 0.0, 0.5]
    assert randomize.dr_obs_size(cfg, lay) == len(want) == 13
    o = randomize.dr_obs(cfg, lay, dr)
    assert o.dtype == jnp.float32
    np.testing.assert_allclose(o, want, atol=1e-6)
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), dr)
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda d: randomize.dr_obs(cfg, lay, d)))(batch), [want, want],
                               atol=1e-6)
    # Pushes alone have no value to observe.
    assert randomize.dr_obs_size(RandomizeConfig(push_interval=(1.0, 3.0)), lay) == 0
    assert randomize.dr_obs(RandomizeConfig(push_interval=(1.0, 3.0)), lay, {}).shape == (0,)


def _amp(tiny, ase=False, **kw):
    """A tiny AMP (or ASE) env on the robot set with every randomisation on, no motions."""
    from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig
    from mjxmimic.envs.ase import ASEEnv, ASEEnvConfig
    kw = {"robot": "tiny", "control_freq": 50.0, "episode_length": 1.0, "observation": "robot", "randomize": ALL, **kw}
    return ASEEnv(ASEEnvConfig(**kw), tiny, tiny.model) if ase else AMPEnv(AMPEnvConfig(**kw), tiny, tiny.model)


def test_critic_dr_obs_appends_the_values_to_the_critic(tiny):
    """Reset and a step with obs_history 2: the obs grows by dr_obs_size at its end, holding
    dr_obs of the env's info["dr"]; everything before is the flag-off env's, bit for bit."""
    on, off = _amp(tiny, critic_dr_obs=True, obs_history=2), _amp(tiny, obs_history=2)
    D = randomize.dr_obs_size(ALL, on.dr_layout)
    assert D == on.dr_obs_size == 17 and off.dr_obs_size == 0   # 1+1+2+3+5 links+2+2+1
    assert on.obs_size == off.obs_size + D and on.actor_obs_size == off.actor_obs_size

    @jax.jit
    def run(params):   # reset and one step of both envs, in one compile
        out = []
        for env, p in zip((on, off), params):
            s0 = env.reset(p, jax.random.PRNGKey(4))
            out.append((s0, env.step(p, s0, jnp.array([0.3, -0.2], jnp.float32))))
        return out

    for s, t in zip(*run((on.default_params(), off.default_params()))):
        assert s.obs.shape == (on.obs_size,)
        np.testing.assert_array_equal(s.obs[:off.obs_size], t.obs)
        np.testing.assert_allclose(s.obs[off.obs_size:], randomize.dr_obs(ALL, on.dr_layout, s.info["dr"]),
                                   rtol=0, atol=1e-6)   # jitted vs eager rounding
        assert np.all(np.abs(np.asarray(s.obs[off.obs_size:])) <= 1.0 + 1e-6)
    # Without randomisation the flag changes nothing.
    assert _amp(tiny, critic_dr_obs=True, randomize=RandomizeConfig()).dr_obs_size == 0


def test_critic_dr_obs_keeps_the_ase_latent_in_place(tiny):
    env = _amp(tiny, ase=True, critic_dr_obs=True, latent_dim=4)
    s = jax.jit(env.reset)(env.default_params(), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(env.latent(s.obs), s.info["latent"])
    z = jnp.array([0.0, 1.0, 0.0, 0.0])
    o = env.with_latent(s.obs, z)
    np.testing.assert_array_equal(env.latent(o), z)
    np.testing.assert_array_equal(o[env.actor_obs_size - 4:env.actor_obs_size], z)
    np.testing.assert_array_equal(o[-env.dr_obs_size:], s.obs[-env.dr_obs_size:])


def test_tracking_critic_dr_obs():
    """The tracking env (k1_walk_deploy: robot set, randomisation on) the same way: its reset obs
    is the flag-off env's obs of that state, then dr_obs of the state's info["dr"]."""
    from mjxmimic.envs.registry import make_env
    on, params, _ = make_env("k1_walk_deploy", {"env.num_envs": 1, "env.critic_dr_obs": "true"})
    off, params_off, _ = make_env("k1_walk_deploy", {"env.num_envs": 1})
    D = randomize.dr_obs_size(on.cfg.randomize, on.dr_layout)
    assert D > 0 and on.dr_obs_size == D and on.obs_size == off.obs_size + D
    assert on.actor_obs_size == off.actor_obs_size
    s = jax.jit(on.reset)(params, jax.random.PRNGKey(2))
    o = jax.jit(off.observation)(params_off, s.physics, s.info)
    np.testing.assert_allclose(s.obs[:off.obs_size], o, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.obs[off.obs_size:], randomize.dr_obs(on.cfg.randomize, on.dr_layout, s.info["dr"]),
                               rtol=0, atol=1e-6)


def test_critic_dr_obs_needs_the_robot_set():
    from mjxmimic.envs.amp import AMPEnvConfig
    with pytest.raises(ValueError, match="critic_dr_obs needs observation: robot"):
        AMPEnvConfig(robot="tiny", observation="full", critic_dr_obs=True)
    with pytest.raises(ConfigError, match="critic_dr_obs needs observation: robot"):
        load_config("k1_kick", {"env.critic_dr_obs": "true"})


# ---- profiles in envs, config parsing --------------------------------------------------
def test_deploy_profile_in_the_env(tiny):
    env = _env(tiny, profile="deploy")
    p = load_profile(tiny, "deploy")
    assert env.model.opt.timestep == 0.0025 and env.num_substeps == 8 and env.control_dt == 0.02
    np.testing.assert_array_equal(env.model.actuator_gainprm[:, 0], [30, 30])
    np.testing.assert_array_equal(env.default_joint_pos, np.float32([0.0, -0.2]))
    np.testing.assert_array_equal(env.init_qpos[tiny.qpos_idx], np.float32([0.0, -0.2]))
    assert tiny.model.opt.timestep == 0.005 and tiny.model.actuator_gainprm[0, 0] == 50   # the robot is untouched
    np.testing.assert_array_equal(p.action_scale, [0.25 * 10 / 30] * 2)


def test_k1_track_deploy_action_scale_follows():
    from mjxmimic.envs.tracking import TrackingEnv
    cfg = load_config("k1_track", {"env.profile": "deploy", "env.sim_timestep": 0.002})["env_cfg"]
    env = TrackingEnv(cfg)
    p = env.profile
    assert env.model.opt.timestep == 0.005 and env.num_substeps == 4   # the profile's, not the config's 0.002
    np.testing.assert_allclose(env.action_scale, 0.25 * p.effort / p.kp, rtol=1e-6)
    np.testing.assert_array_equal(env.default_joint_pos, p.default_joint_pos.astype(np.float32))
    np.testing.assert_allclose(env.action_high - env.action_low, 2 * env.action_scale, rtol=1e-6)


def test_kick_scene_gets_the_profile():
    from mjxmimic.envs.kick import KickEnv
    cfg = load_config("k1_kick", {"env.profile": "deploy"})["env_cfg"]
    env = KickEnv(cfg)
    nu = env.robot.model.nu
    np.testing.assert_array_equal(env.model.actuator_gainprm[:nu, 0], env.profile.kp)
    np.testing.assert_array_equal(env.model.actuator_forcerange[:nu, 1], env.profile.effort)
    assert env.model.nbody == env.robot.model.nbody + 1 and env.control_dt == 0.02 and env.num_substeps == 4
    np.testing.assert_array_equal(env.init_qpos[env.robot.qpos_idx], env.profile.default_joint_pos.astype(np.float32))


def test_randomize_config_from_yaml():
    c = load_config("k1_walk", {"env.randomize": "{friction: [0.3, 0.6], delay: [2, 8], com_offset: [0.025, 0.05, 0.05]}"})
    r = c["env_cfg"].randomize
    assert r == RandomizeConfig(friction=(0.3, 0.6), delay=(2, 8), com_offset=(0.025, 0.05, 0.05)) and r.active
    assert not load_config("k1_walk")["env_cfg"].randomize.active
    assert load_config("k1_walk", {"env.randomize.kp_scale": "[0.8, 1.2]"})["env_cfg"].randomize.kp_scale == (0.8, 1.2)


@pytest.mark.parametrize("value, msg", [
    ("{frict: [0.3, 0.6]}", "unknown key(s) ['frict']"),
    ("{friction: [0.6, 0.3]}", "randomize.friction must be [lo, hi] with lo <= hi"),
    ("{friction: [0.3]}", "expected 2 items"),
    ("{delay: [2.5, 8]}", "expected an integer"),
    ("{restitution: [0, 1.5]}", "restitution must lie in [0, 1)"),
    ("{push_interval: [0, 3]}", "push_interval must be positive"),
    ("{ramp: [300, 100]}", "ramp must be training iterations [start, end]"),
])
def test_bad_randomize_config_is_one_clear_error(value, msg):
    with pytest.raises(ConfigError) as e:
        load_config("k1_walk", {"env.randomize": value})
    assert msg in str(e.value) and "env.randomize" in str(e.value) and "\n" not in str(e.value)


def test_unknown_profile_is_a_clear_error():
    from mjxmimic.envs.registry import make_env
    with pytest.raises(ConfigError, match=r"no profile 'field'; profiles: \['sim', 'deploy'\]"):
        make_env("k1_kick", {"env.profile": "field", "env.num_envs": 2})
