"""Export (ONNX + policy.json) and the MuJoCo C sim2sim check on a tiny K1 tracking run.

The run is made in-process by ``export_runs.exported_run`` (shared with test_sim2sim.py's kick run)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

from export_runs import TINY, exported_run  # noqa: E402
from mjxmimic import export, sim2sim  # noqa: E402
from mjxmimic.envs.registry import make_env  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return exported_run(tmp_path_factory.mktemp("run"), "k1_track", TINY)


def test_onnx_equals_the_jax_policy(run):
    from mjxmimic.learning import policy_params
    from mjxmimic.learning.ppo import actor_obs_size, actor_input
    _, out, (env, _, agent_cfg, trainer, ts) = run
    meta, sess = sim2sim.load_policy(out)
    n = actor_obs_size(env)
    assert meta["observation"]["size"] == n < env.obs_size
    obs = np.random.default_rng(0).normal(0.0, 20.0, (16, n)).astype(np.float32)   # some entries clip
    pp = policy_params(ts)
    assert np.any(np.abs(np.asarray(actor_input(pp.obs_norm, obs, n, agent_cfg.obs_clip))) == agent_cfg.obs_clip)
    a = sess.run(["action"], {"obs": obs})[0]
    mean = np.asarray(trainer.actor.apply(pp.actor_params, actor_input(pp.obs_norm, obs, n, agent_cfg.obs_clip))[0])
    np.testing.assert_allclose(a, mean, atol=1e-5)
    # the env action the trainer's policy gives = policy.json's rule applied to the ONNX output
    target = np.asarray(trainer.policy(pp, obs, deterministic=True))
    np.testing.assert_allclose(meta["action"]["offset"] + meta["action"]["scale"] * a, target, atol=1e-5)
    one = sess.run(["action"], {"obs": obs[:1]})[0]
    np.testing.assert_allclose(one, a[:1], atol=1e-6)
    assert np.abs(a).max() > 0   # not a zero net


def test_policy_json_round_trips(run):
    _, out, (env, params, agent_cfg, _, ts) = run
    meta = export.load_policy_json(out / "policy.json")
    r, m = env.robot, env.model
    assert meta["robot"] == "k1" and meta["joint_names"] == list(r.joint_names) and meta["iteration"] == 1
    np.testing.assert_array_equal(meta["kp"], m.actuator_gainprm[:r.model.nu, 0].astype(np.float32))
    np.testing.assert_array_equal(meta["kd"], -m.actuator_biasprm[:r.model.nu, 2].astype(np.float32))
    np.testing.assert_array_equal(meta["effort"], m.actuator_forcerange[:r.model.nu, 1].astype(np.float32))
    # tracking: target = default + scale·a, scale = factor·effort/kp
    np.testing.assert_allclose(meta["action"]["offset"], env.default_joint_pos, atol=1e-7)  # (low+high)/2
    np.testing.assert_allclose(meta["action"]["scale"], env.cfg.action_scale_factor * meta["effort"] / meta["kp"],
                               rtol=1e-6)
    assert meta["action"]["mode"] == "default_plus_scale" and meta["control_freq"] == pytest.approx(50.0)
    lay = meta["observation"]["layout"]
    assert sum(t["size"] for t in lay) == meta["observation"]["size"] and meta["observation"]["history"] == 1
    # the same numbers as the exporter computes them, after the JSON trip
    again = export.policy_metadata(env, params, agent_cfg, export.actor_obs_layout(env), 1)
    np.testing.assert_array_equal(again["reference"]["clips"][0]["joint_pos"],
                                  meta["reference"]["clips"][0]["joint_pos"])
    np.testing.assert_array_equal(again["armature"], meta["armature"])
    assert again["observation"]["layout"] == lay
    c = meta["reference"]["clips"][0]
    assert c["joint_pos"].shape == (env.max_episode_steps + 1, env.num_joints)
    np.testing.assert_allclose(c["joint_pos"][0], c["qpos0"][r.qpos_idx], atol=1e-6)


def test_sim2sim_runs_the_exported_policy(run, capsys):
    _, out, _ = run
    meta, sess = sim2sim.load_policy(out)
    m, rec = sim2sim.run_episodes(meta, sess, episodes=2, seconds=0.2, delay=2, start_noise=0.02, record=True)
    assert {"survival", "joint_pos_err", "episode_length_s"} <= set(m)
    assert 0.0 <= m["survival"] <= 1.0 and 0.0 < m["episode_length_s"] <= 0.2 + 1e-9
    assert rec.qpos.shape[0] >= 2 and np.all(np.isfinite(rec.qpos)) and rec.target is None
    capsys.readouterr()
    assert sim2sim.main([str(out), "--episodes", "1", "--seconds", "0.1"]) == 0
    assert "| survival |" in capsys.readouterr().out
    assert sim2sim.main([str(out / "nowhere")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _observation_sets():
    from mjxmimic.envs.char import CharConfig
    have = {f.name for f in dataclasses.fields(CharConfig)}
    return ["full"] + (["robot"] if "observation" in have else [])


@pytest.mark.parametrize("obs_set", _observation_sets())
def test_sim2sim_observation_equals_the_env_observation(run, obs_set):
    """Same physical state in MJX and MuJoCo C, no noise: the actor observations agree."""
    import mujoco

    from mjxmimic.envs import physics
    from mjxmimic.envs.tracking import EVAL_OVERRIDES
    from mjxmimic.learning.ppo import actor_obs_size
    d, _, _ = run
    ov = {**EVAL_OVERRIDES, **({"env.observation": obs_set} if obs_set != "full" else {})}
    env, params, agent_cfg = make_env(d / "config.yaml", ov)
    meta = export.loads_policy_json(export.dumps_policy_json(
        export.policy_metadata(env, params, agent_cfg, export.actor_obs_layout(env))))
    r = env.robot
    rng = np.random.default_rng(3)
    c = meta["reference"]["clips"][0]
    qpos, qvel = c["qpos0"].astype(np.float64), c["qvel0"].astype(np.float64)
    qpos[0:3] += [0.3, -0.2, 0.02]
    rot = qpos[3:7] + rng.normal(0, 0.1, 4)
    qpos[3:7] = rot / np.linalg.norm(rot)
    qpos[r.qpos_idx] += rng.uniform(-0.2, 0.2, len(r.qpos_idx))
    qvel += rng.normal(0.0, 0.5, qvel.shape)
    step, last = 7, rng.uniform(-1, 1, env.num_joints).astype(np.float32)

    st = jax.jit(env.reset)(params, jax.random.PRNGKey(0))
    data = jax.jit(physics.set_state)(params.model, jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))
    info = {**st.info, "step": jnp.asarray(step, jnp.int32), "last_action": jnp.asarray(last)}
    want = np.asarray(jax.jit(env.observation)(params, data, info))[:actor_obs_size(env)]

    md = mujoco.MjData(r.model)
    md.qpos[:], md.qvel[:] = qpos, qvel
    mujoco.mj_forward(r.model, md)
    got = sim2sim.make_observation_fn(meta)(sim2sim.read_sensors(r, md, r.body_id(meta["reference"]["anchor_body"])),
                                           0, step, last)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
