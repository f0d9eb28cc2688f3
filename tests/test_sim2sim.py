"""sim2sim of a ball-kick policy: a tiny ``k1_kick_deploy`` run (robot-side observation, deploy
profile, randomisation) exported through the same path as test_export.py's tracking run, run in
MuJoCo C in the env's ball scene."""
import copy
import dataclasses
import json

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

from export_runs import TINY, exported_run  # noqa: E402
from mjxmimic import sim2sim  # noqa: E402

KICK = {**TINY, "agent.disc_hidden": "[8]", "agent.disc_buffer_size": "16"}


@pytest.fixture(scope="module")
def kick(tmp_path_factory):
    d, out, (env, params, *_) = exported_run(tmp_path_factory.mktemp("kick"), "k1_kick_deploy", KICK,
                                             trainer_init=False)
    meta, sess = sim2sim.load_policy(out)
    return out, env, params, meta, sess


def test_policy_json_records_the_kick(kick):
    _, env, params, meta, _ = kick
    assert meta["env_kind"] == "KickEnv" and meta["profile"] == "deploy" and "reference" not in meta
    c = env.cfg
    t = meta["task"]
    assert t["name"] == "kick" and t["target_radius"] == c.target_radius
    assert t["layout"] == {"ball_bearing": [-c.ball_angle_max, c.ball_angle_max],
                           "ball_dist": [c.ball_dist_min, c.ball_dist_max],
                           "target_turn": [-c.target_angle_max, c.target_angle_max],
                           "target_dist": [c.target_dist_min, c.target_dist_max]}
    assert t["ball"]["radius"] == c.ball_radius and t["ball"]["robot_contacts"] == c.ball_contacts
    np.testing.assert_array_equal(meta["init_qpos"], env.init_qpos)
    ids = [mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in meta["fall"]["geoms"]]
    assert ids == [int(g) for g in env.fall_geom_ids] and meta["fall"]["enabled"]
    assert meta["fall"]["ground_contact_height"] == pytest.approx(c.ground_contact_height)
    assert [x["name"] for x in meta["observation"]["layout"]][-1] == "task"
    assert meta["observation"]["layout"][-1]["size"] == 8 and meta["action"]["mode"] == "low_high"
    # the scene sim2sim builds from policy.json is the env's
    model, scene = sim2sim.sim_model(meta, env.robot)
    assert (model.nq, model.nbody, model.npair) == (env.model.nq, env.model.nbody, env.model.npair)
    np.testing.assert_array_equal(model.pair_friction, env.model.pair_friction)
    assert scene.ball_qpos_adr == env.ball_qpos_adr
    # the randomisation it was trained under; sim2sim's default delay is the middle of its delay
    r = c.randomize
    assert meta["randomize"]["friction"] == list(r.friction) and meta["randomize"]["delay"] == list(r.delay)
    assert not {"ramp", "ramp_adaptive", "ramp_signal"} & set(meta["randomize"])
    assert all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in meta["randomize"].values())
    np.testing.assert_allclose(meta["randomize"]["delay_s"], np.asarray(r.delay) * env.model.opt.timestep)
    assert sim2sim.default_delay_ms(meta) == pytest.approx(500.0 * sum(r.delay) * env.model.opt.timestep)
    assert sim2sim.default_delay_ms({k: v for k, v in meta.items() if k != "randomize"}) == 0.0


def test_sim2sim_runs_the_kick_policy(kick, tmp_path, capsys):
    out, env, _, meta, sess = kick
    m, rec = sim2sim.run_episodes(meta, sess, episodes=2, seconds=0.3, delay=2, obs_noise=1.0, record=True)
    assert m["episodes"] == 2
    assert m["success_rate"] + m["fall_rate"] + m["timeout_rate"] == pytest.approx(1.0)
    assert 0.0 < m["episode_length_s"] <= 0.3 + 1e-9
    # an untrained policy does not reach the ball in 0.3 s: it ends where the layout put it
    assert 1.0 - 1e-4 <= m["final_ball_target_dist"] <= 2.0 + 1e-4
    assert rec.qpos.shape[1] == env.model.nq and np.all(np.isfinite(rec.qpos))
    a = env.ball_qpos_adr
    assert rec.qpos[0, a + 2] == pytest.approx(env.cfg.ball_radius)
    d0 = np.linalg.norm(rec.qpos[0, a:a + 2] - rec.qpos[0, :2])
    assert env.cfg.ball_dist_min - 1e-5 <= d0 <= env.cfg.ball_dist_max + 1e-5
    assert rec.target.shape == (len(rec.qpos), 3) and np.all(rec.target[:, 2] == 0)
    capsys.readouterr()
    j = tmp_path / "m.json"
    assert sim2sim.main([str(out), "--episodes", "1", "--seconds", "0.1", "--json", str(j)]) == 0
    printed = capsys.readouterr().out
    assert "| success_rate |" in printed and f"actuator delay: {sim2sim.default_delay_ms(meta):g} ms" in printed
    got = json.loads(j.read_text())
    assert got["delay_s"] == pytest.approx(sim2sim.default_delay_ms(meta) / 1000.0, abs=got["dt"])
    assert got["time_to_success"] is None and got["timeout_rate"] == 1.0   # no success: no mean time


def test_kick_episodes_end_as_the_env_says(kick):
    _, env, _, meta, sess = kick
    dt = 1.0 / meta["control_freq"]
    # the target 0.1 m beyond the ball, inside the 0.5 m area: a success on the first step
    near = copy.deepcopy(meta)
    near["task"]["layout"]["target_dist"] = [0.1, 0.1]
    m, _ = sim2sim.run_episodes(near, sess, episodes=1, seconds=1.0)
    assert m["success_rate"] == 1.0 and m["time_to_success"] == pytest.approx(dt)
    assert m["final_ball_target_dist"] == pytest.approx(0.1, abs=1e-4)
    # lying on its side: a fall, on the second step (never on the first, as the env)
    lying = copy.deepcopy(meta)
    q = lying["init_qpos"]
    q[2], q[3:7] = 0.12, [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]
    m, _ = sim2sim.run_episodes(lying, sess, episodes=1, seconds=1.0)
    assert m["fall_rate"] == 1.0 and m["episode_length_s"] == pytest.approx(2 * dt)
    assert np.isnan(m["time_to_success"])
    other = copy.deepcopy(meta)
    other["task"]["name"] = "steer"
    with pytest.raises(ValueError, match="neither a reference clip nor a task it knows"):
        sim2sim.run_episodes(other, sess)


def test_kick_observation_equals_the_env_observation(kick):
    """Same state (robot, ball, target, last action) in MJX and MuJoCo C, no noise: the actor
    observation sim2sim builds is the env's."""
    from mujoco import mjx

    from mjxmimic.envs.kick import KickEnv
    _, env, params, meta, _ = kick
    frame = sum(t["size"] for t in meta["observation"]["layout"])   # one frame of the actor's history
    H = meta["observation"]["history"]
    assert H == env.cfg.obs_history and frame * H == meta["observation"]["size"]
    quiet = KickEnv(dataclasses.replace(env.cfg, obs_noise_scale=0.0), robot=env.robot)
    model, scene = sim2sim.sim_model(meta, env.robot)
    r, rng = env.robot, np.random.default_rng(5)
    md = mujoco.MjData(model)
    md.qpos[:r.model.nq] = meta["init_qpos"]
    md.qpos[0:3] += [0.4, -0.3, 0.02]
    rot = np.array([np.cos(1.0), 0.0, 0.0, np.sin(1.0)]) + rng.normal(0, 0.1, 4)   # yawed and tilted
    md.qpos[3:7] = rot / np.linalg.norm(rot)
    md.qpos[r.qpos_idx] += rng.uniform(-0.2, 0.2, r.num_joints)
    a = scene.ball_qpos_adr
    md.qpos[a:a + 7] = [1.1, 0.2, 0.07, 1.0, 0.0, 0.0, 0.0]
    md.qvel[:] = rng.normal(0.0, 0.5, model.nv)
    tar = np.array([2.5, -0.7, 0.0])
    mujoco.mj_forward(model, md)
    out = rng.uniform(-1.5, 1.5, r.num_joints).astype(np.float32)   # the policy's last output, some beyond ±1

    act = meta["action"]
    env_action = jnp.asarray(act["offset"] + act["scale"] * out)   # what the learner hands the env
    info = {"step": jnp.asarray(7, jnp.int32), "noise_key": jax.random.PRNGKey(0),
            "tar_pos": jnp.asarray(tar, jnp.float32), "last_action": quiet.normalized_action(env_action)}
    want = np.asarray(jax.jit(quiet.observation)(params, mjx.put_data(model, md), info))[:frame]

    s = {**sim2sim.read_sensors(r, md), **sim2sim.read_kick_inputs(scene, md, tar)}
    got = sim2sim.make_observation_fn(meta)(s, None, 7, sim2sim.observed_action(act, out))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    assert np.abs(want[-8:]).min() > 1e-3 and np.abs(got[-8 - r.num_joints:-8]).max() == pytest.approx(1.0)


# ---- the physics step: explicit PD damping must stay stable --------------------------------
HINGE = """<mujoco><option gravity="0 0 0" integrator="Euler"/><worldbody><body>
  <joint name="j" type="hinge" axis="0 1 0" armature="0.1"/>
  <inertial pos="0 0 -0.5" mass="2" diaginertia="0.01 0.01 0.01"/>
</body></worldbody><actuator><motor joint="j"/></actuator></mujoco>"""


def test_pd_stable_timestep_is_the_explicit_damping_limit():
    m = mujoco.MjModel.from_xml_string(HINGE)
    kd = 3.0
    limit, j = sim2sim.pd_stable_timestep(m, m.qpos0, [0], [kd])
    M = 0.1 + 0.01 + 2 * 0.5 ** 2          # armature + own inertia + m·r²
    assert j == 0 and limit == pytest.approx(M / kd, rel=1e-9)
    # τ = −kd·q̇ applied explicitly scales q̇ by 1 − kd·dt/M per step: it settles without
    # oscillating below the limit, oscillates between 1x and 2x, and diverges above 2x.
    for f in (0.9, 1.5, 2.5):
        m.opt.timestep = f * limit
        d = mujoco.MjData(m)
        d.qvel[0] = 1.0
        for _ in range(10):
            d.ctrl[0] = -kd * d.qvel[0]
            mujoco.mj_step(m, d)
        assert d.qvel[0] == pytest.approx((1 - f) ** 10, rel=1e-6)
    assert abs((1 - 2.5) ** 10) > 50


def test_default_physics_step_keeps_the_policy_pd_stable(kick, capsys):
    _, env, _, meta, _ = kick
    robot = env.robot
    base, _ = sim2sim.sim_model(meta, robot)
    dt = sim2sim.physics_timestep(robot, meta, None, base)
    control_dt = 1.0 / meta["control_freq"]
    n = control_dt / dt
    assert abs(n - round(n)) < 1e-6 and dt <= sim2sim.MAX_DT + 1e-12
    m = sim2sim.torque_model(robot, meta, dt, base)
    q = np.array(m.qpos0)
    q[:robot.model.nq] = meta["init_qpos"]
    limit, j = sim2sim.pd_stable_timestep(m, q, robot.qvel_idx, meta["kd"])
    assert dt <= limit and (dt == sim2sim.MAX_DT or control_dt / (round(n) - 1) > limit)   # the largest such step
    assert capsys.readouterr().err == ""
    assert sim2sim.physics_timestep(robot, meta, 4 * limit, base) == 4 * limit
    assert f"joint {robot.joint_names[j]}" in capsys.readouterr().err


def test_delay_in_milliseconds_is_rounded_to_physics_steps(kick):
    _, env, _, meta, _ = kick
    base, _ = sim2sim.sim_model(meta, env.robot)
    assert sim2sim._step_and_delay(env.robot, meta, 0.0004, 3, None, base) == (0.0004, 3)
    assert sim2sim._step_and_delay(env.robot, meta, 0.0004, 3, 25.0, base) == (0.0004, 62)   # 62.5 -> 62
    dt, steps = sim2sim._step_and_delay(env.robot, meta, None, 0, 20.0, base)
    assert steps == round(0.02 / dt) and steps > 0
