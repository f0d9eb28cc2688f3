"""ASE: latents (uniform on the sphere, redrawn at reset and after their time), the default-pose
reset, the encoder reward and loss and the diversity loss against hand computations, a tiny
k1_ase training run, and the high-level steering policy trained over that run, frozen."""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from mjxmimic.envs.ase import ASEEnv, ASEEnvConfig, sample_latent
from mjxmimic.envs.registry import ConfigError, make_env
from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.amp import AMPExtension
from mjxmimic.learning.ase import ASEConfig, ASEExtension, diversity_loss, encoder_loss
from mjxmimic.learning.networks import GaussianActor
from mjxmimic.learning.ppo import Transition


def test_latents_are_unit_and_uniform_on_the_sphere():
    z = np.asarray(sample_latent(jax.random.PRNGKey(0), 64, (20000,)))
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, atol=1e-5)
    assert np.max(np.abs(z.mean(0))) < 0.006                     # std of a mean: 1/sqrt(64·20000) = 0.0009
    np.testing.assert_allclose(z.var(0), 1 / 64, rtol=0.06)       # E z_i² = 1/d on S^(d-1)
    cov = np.cov(z.T) - np.diag(z.var(0, ddof=1))
    assert np.max(np.abs(cov)) < 0.0015                           # no preferred directions


@pytest.fixture(scope="module")
def k1_env():
    return ASEEnv(ASEEnvConfig(robot="k1", latent_dim=8, latent_time_min=0.5, latent_time_max=2.0))


def test_latent_redrawn_at_reset_and_after_its_time(k1_env):
    env, dt = k1_env, k1_env.control_dt
    base = {"step": jnp.zeros((), jnp.int32)}
    infos = [env.task_init(None, jax.random.PRNGKey(i), None, None, base)[2] for i in range(2)]
    for info in infos:   # a reset draws a unit latent and a time 0.5..2 s ahead
        assert float(jnp.linalg.norm(info["latent"])) == pytest.approx(1.0, abs=1e-6)
        assert 0.5 <= float(info["latent_time"]) <= 2.0
    assert not np.allclose(infos[0]["latent"], infos[1]["latent"])
    # Planted time 0.09 s: at step 2 (0.067 s) z is kept, at step 3 (0.1 s) it is redrawn, due 0.6..2.1 s.
    z0 = jnp.ones(8) / np.sqrt(8)
    info = {"step": jnp.int32(2), "latent": z0, "latent_time": jnp.float32(0.09)}
    r, failed, succ, metrics, kept = env.task_step(None, jax.random.PRNGKey(5), None, None, None, info)
    assert float(r) == 0.0 and not bool(failed) and not bool(succ) and metrics == {}
    np.testing.assert_array_equal(kept["latent"], z0)
    assert float(kept["latent_time"]) == pytest.approx(0.09)
    new = env.task_step(None, jax.random.PRNGKey(5), None, None, None, {**info, "step": jnp.int32(3)})[4]
    assert not np.allclose(new["latent"], z0)
    assert float(jnp.linalg.norm(new["latent"])) == pytest.approx(1.0, abs=1e-6)
    assert 3 * dt + 0.5 <= float(new["latent_time"]) <= 3 * dt + 2.0
    # The latent is the obs's task part: the last latent_size entries.
    obs = jnp.arange(env.obs_size, dtype=jnp.float32)
    np.testing.assert_array_equal(env.latent(obs), obs[-8:])
    np.testing.assert_array_equal(env.with_latent(obs, z0), jnp.concatenate([obs[:-8], z0]))


def test_default_pose_reset_with_its_probability():
    env, params, _ = make_env("k1_ase", {"env.num_envs": 4, "env.motion_files": ["motions/k1/walk.npz"]})
    keys = jax.random.split(jax.random.PRNGKey(0), 400)

    def default_frac(e):
        qpos, qvel = jax.jit(jax.vmap(lambda k: e.initial_state(params, k)[:2]))(keys)
        default = np.all(np.asarray(qpos) == e.init_qpos, axis=1)
        assert np.all(np.asarray(qvel)[default] == 0.0)            # the default pose at rest
        return default.mean()

    assert 0.4 < default_frac(env) < 0.6                             # default_reset_prob 0.5, 400 draws
    for p in (0.0, 1.0):
        assert default_frac(ASEEnv(dataclasses.replace(env.cfg, default_reset_prob=p))) == p


# --------------------------------------------------------------------------- learner maths
@dataclass(frozen=True)
class _LatentEnv:
    """The ASE learner's env contract at its smallest: obs = [x (2) | z (2)], disc obs 3-D."""
    obs_size: int = 4
    action_size: int = 2
    disc_obs_size: int = 3
    latent_size: int = 2

    def latent(self, obs):
        return obs[..., -2:]

    def with_latent(self, obs, z):
        return jnp.concatenate([obs[..., :-2], z], axis=-1)

    def demo_disc_obs(self, params, key, n):
        return jnp.zeros((n, 3))


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_encoder_reward_and_loss_by_hand():
    env = _LatentEnv()
    cfg = ASEConfig(num_envs=2, steps_per_iter=3, disc_hidden=(), enc_hidden=(), disc_buffer_size=16,
                    enc_epochs=1, enc_batch_size=3.0, enc_reward_weight=0.5, disc_reward_weight=0.5)
    assert cfg.diversity_weight == 0.01 and cfg.diversity_target == 1.0 and cfg.enc_init_output_scale == 0.1
    ext = ASEExtension(env, cfg)
    state = ext.init(jax.random.PRNGKey(0), None)
    # A linear encoder: q = normalize(W x̂), x̂ = (x - mean) / std with a planted disc-obs normaliser.
    W = np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]], np.float32)
    enc = {"params": {"latent": {"kernel": jnp.asarray(W), "bias": jnp.zeros(2)}}}
    norm = normlib.update(normlib.init(3), jnp.array([[1.0, 0.0, 2.0], [3.0, 2.0, 2.0]]))   # mean (2, 1, 2)
    state = state.replace(enc_params=enc, disc_norm=norm)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    z = _unit(rng.normal(size=(6, 2)))
    x_hat = np.asarray(normlib.normalize(norm, jnp.asarray(x)))
    q = _unit(x_hat @ W)
    zq = np.sum(z * q, axis=1)
    assert np.any(zq < 0) and np.any(zq > 0)                 # both sides of the max(0, ·)
    obs = np.concatenate([rng.normal(size=(6, 2)), z], axis=1).astype(np.float32).reshape(3, 2, 4)
    zeros = jnp.zeros((3, 2))
    traj = Transition(obs=jnp.asarray(obs), action=zeros, logp=zeros, mean=zeros, log_std=zeros,
                      reward=jnp.ones((3, 2)), done=zeros, truncated=zeros, terminal_obs=jnp.asarray(obs),
                      env_metrics={}, extra=jnp.asarray(x).reshape(3, 2, 3), curriculum=())
    key = jax.random.PRNGKey(2)
    prepared, rewards, demo, metrics = jax.jit(ext.prepare, static_argnums=2)(state, traj, None, key)
    amp_prepare = jax.jit(lambda *a: AMPExtension.prepare(ext, *a), static_argnums=2)   # task and disc terms alone
    _, amp_rewards, _, _ = amp_prepare(state, traj, None, key)
    np.testing.assert_allclose(np.ravel(rewards - amp_rewards), 0.5 * np.maximum(zq, 0.0), rtol=1e-5, atol=1e-6)
    assert float(metrics["enc_reward_mean"]) == pytest.approx(np.mean(np.maximum(zq, 0.0)), rel=1e-5)
    assert float(encoder_loss(jnp.asarray(z), jnp.asarray(q))) == pytest.approx(-np.mean(zq), rel=1e-5)
    # One encoder step over all 6 samples: its loss is -mean(z·q) with the pre-update normaliser and
    # net; the update then moves the encoder and, after it, the normaliser (6 agent + 6 demo samples).
    new, info = jax.jit(ext.update)(prepared, traj, demo, jnp.bool_(True), jax.random.PRNGKey(3))
    assert float(info["enc_loss"]) == pytest.approx(-np.mean(zq), rel=1e-5)
    assert not np.allclose(new.enc_params["params"]["latent"]["kernel"], W)
    assert float(new.disc_norm.count) == 2 + 12


def test_diversity_loss_by_hand():
    mean = np.array([[0.0, 0.1], [0.2, -0.2]])
    mean_new = np.array([[0.3, 0.1], [0.2, 0.4]])
    z = _unit([[1.0, 0.0], [0.0, 1.0]])
    z_new = _unit([[0.0, 1.0], [0.0, -1.0]])       # z·z' = 0 and -1: z_diff = 0.5 and 1
    a_diff = np.array([0.09 / 2, 0.36 / 2])
    expect = np.mean(np.square(1.0 - a_diff / (np.array([0.5, 1.0]) + 1e-5)))
    got = diversity_loss(*(jnp.asarray(a, jnp.float32) for a in (mean, mean_new, z, z_new)))
    assert float(got) == pytest.approx(expect, rel=1e-5)
    # The learner's term: a fresh z' per state from the minibatch key, both means from the actor.
    env = _LatentEnv()
    ext = ASEExtension(env, ASEConfig(num_envs=2))
    actor = GaussianActor(2, hidden=())
    A = np.array([[0.5, 0.0], [0.0, 1.0], [1.0, -1.0], [2.0, 0.5]], np.float32)   # mean = obs @ A (identity norm)
    params = {"params": {"mean": {"kernel": jnp.asarray(A), "bias": jnp.zeros(2)}}}
    rng = np.random.default_rng(1)
    obs = np.concatenate([rng.normal(size=(5, 2)), _unit(rng.normal(size=(5, 2)))], axis=1).astype(np.float32)
    key = jax.random.PRNGKey(7)

    def term(p):
        mu, _ = actor.apply(p, jnp.asarray(obs))
        return ext.actor_loss_term(actor.apply, p, jnp.asarray(obs), mu, normlib.init(4), key)

    loss, info = term(params)
    zn = np.asarray(sample_latent(key, 2, (5,)))
    obs_new = np.concatenate([obs[:, :2], zn], axis=1)
    by_hand = np.mean(np.square(1.0 - np.mean(np.square(obs_new @ A - obs @ A), axis=1)
                                / (0.5 - 0.5 * np.sum(obs[:, 2:] * zn, axis=1) + 1e-5)))
    assert float(info["diversity_loss"]) == pytest.approx(by_hand, rel=1e-4)
    assert float(loss) == pytest.approx(0.01 * by_hand, rel=1e-4)
    # Gradients flow through both means: only the latent rows of A matter (x cancels in a_diff).
    g = np.asarray(jax.grad(lambda p: term(p)[0])(params)["params"]["mean"]["kernel"])
    np.testing.assert_allclose(g[:2], 0.0, atol=1e-6)
    assert np.all(np.abs(g[2:]) > 0)


# --------------------------------------------------------------------------- tiny training runs
TINY = ["--num-envs", "4", "--set", "agent.steps_per_iter=4", "--set", "agent.actor_hidden=[16]",
        "--set", "agent.critic_hidden=[16]"]
ASE_METRICS = ("enc_loss", "enc_reward_mean", "diversity_loss", "disc_loss", "style_reward_mean", "critic_loss",
               "actor_loss", "reward_mean")


@pytest.fixture(scope="module")
def low_run(tmp_path_factory):
    from mjxmimic import train
    d = tmp_path_factory.mktemp("ase") / "k1_ase"
    # One clip (the config's datasets are in the snapshot test): less to load here and in the high level.
    tiny = TINY + ["--set", "env.motion_files=[motions/k1/walk.npz]", "--set", "agent.disc_hidden=[16]",
                   "--set", "agent.enc_hidden=[16]", "--set", "env.latent_dim=16", "--set", "agent.disc_buffer_size=32",
                   "--set", "agent.disc_replay_samples=8"]
    assert train.main(["--env", "k1_ase", *tiny, "--iterations", "2", "--out", str(d)]) == 0
    return d


@pytest.mark.slow
def test_k1_ase_trains_with_every_ase_metric(low_run):
    lines = [json.loads(x) for x in (low_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for m in lines:
        for k in ASE_METRICS:
            assert k in m and np.isfinite(m[k]), k
        assert 0.0 <= m["enc_reward_mean"] <= 1.0
    cfg = yaml.safe_load((low_run / "config.yaml").read_text())
    assert cfg["env"]["name"] == "ase" and cfg["agent"]["name"] == "ase" and cfg["env"]["latent_dim"] == 16


@pytest.mark.slow
def test_high_level_steering_over_the_frozen_low_level(low_run, tmp_path):
    from mjxmimic.train import build_trainer
    over = {"env.num_envs": 4, "env.low_level_run": str(low_run), "env.low_level_steps": 2,
            "agent.steps_per_iter": 2, "agent.actor_hidden": [16], "agent.critic_hidden": [16]}
    env, params, cfg = make_env("k1_ase_steer", over)
    assert env.action_size == 16 and env.action_low is None          # actions are latents
    # The low level is the run's last checkpoint: its obs normaliser has seen 2 iterations × 4 envs × 4 steps.
    norm = params.low_policy.obs_norm
    assert float(norm.count) == 32 and norm.mean.shape == (env.low.obs_size,)
    trainer = build_trainer(env, params, cfg)
    ts, m = trainer.iteration(trainer.init(jax.random.PRNGKey(0)))
    for k in ("critic_loss", "actor_loss", "reward_mean", "env/tar_speed", "env/root_speed_along_tar"):
        assert np.isfinite(float(m[k])), k
    assert 0.0 <= float(m["reward_mean"]) <= 2.0                     # 2 control steps of a reward in [0, 1]
    assert int(ts.iteration) == 1
    # Bad low-level runs: one clear error each.
    with pytest.raises(ConfigError, match="not a run directory"):
        make_env("k1_ase_steer", {**over, "env.low_level_run": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="is for robot k1"):
        make_env("k1_ase_steer", {**over, "env.robot": "g1"})
    other = tmp_path / "amp_run"
    other.mkdir()
    raw = yaml.safe_load((low_run / "config.yaml").read_text())
    raw["env"] = {k: v for k, v in raw["env"].items() if k not in ("latent_dim", "latent_time_min",
                                                                   "latent_time_max", "default_reset_prob")}
    (other / "config.yaml").write_text(yaml.safe_dump({**raw, "env": {**raw["env"], "name": "amp"}}))
    with pytest.raises(ConfigError, match="not an ASE one"):
        make_env("k1_ase_steer", {**over, "env.low_level_run": str(other)})
    shutil.rmtree(other)


# --------------------------------------------------------------------------- latents of a policy (play --latents)
@pytest.fixture(scope="module")
def held_env():
    from mjxmimic.ase_eval import HOLD_LATENT_OVERRIDES
    env, params, _ = make_env("k1_ase", {"env.num_envs": 4, "env.motion_files": ["motions/k1/walk.npz"],
                                         "env.latent_dim": 8, **HOLD_LATENT_OVERRIDES})
    return env, params


def test_fixed_latents_are_held_and_give_different_rollouts(held_env):
    from mjxmimic.ase_eval import evaluate_latents, latent_rollouts
    env, params = held_env
    # The hold is the config's: the next redraw is 10^9 s away, so even the episode's last step keeps z.
    info = env.task_init(None, jax.random.PRNGKey(0), None, None, {"step": jnp.zeros((), jnp.int32)})[2]
    assert float(info["latent_time"]) >= 1e8
    last = env.task_step(None, jax.random.PRNGKey(1), None, None, None,
                         {**info, "step": jnp.int32(env.max_episode_steps)})[4]
    np.testing.assert_array_equal(last["latent"], info["latent"])
    # An untrained but seeded policy: a fixed random linear map of the obs (z included).
    W = jax.random.normal(jax.random.PRNGKey(3), (env.obs_size, env.action_size)) / np.sqrt(env.obs_size)

    def policy(obs):
        return 0.5 * jnp.tanh(obs @ W)

    z = sample_latent(jax.random.PRNGKey(1), 8, (3,))
    q, zs, alive, fell = jax.jit(lambda z: latent_rollouts(env, params, policy, jax.random.PRNGKey(0), z, 12))(z)
    assert q.shape == (3, 13, env.model.nq) and zs.shape == (3, 13, 8)
    np.testing.assert_array_equal(zs, np.broadcast_to(np.asarray(z)[:, None], zs.shape))   # every obs carries its z
    assert np.all(alive) and not np.any(fell)
    q = np.asarray(q)
    np.testing.assert_array_equal(q[:, 0], np.broadcast_to(env.init_qpos, q[:, 0].shape))   # one start: the default pose
    joints = q[:, :, np.asarray(env.robot.qpos_idx)]
    for i, j in ((0, 1), (0, 2), (1, 2)):                      # the latents steer the joints apart
        assert np.sqrt(np.mean((joints[i] - joints[j]) ** 2)) > 1e-3
    with pytest.raises(ValueError, match="HOLD_LATENT_OVERRIDES"):   # an env that would redraw z is refused
        evaluate_latents(ASEEnv(dataclasses.replace(env.cfg, latent_time_min=0.0)), params, policy,
                         jax.random.PRNGKey(0), 2)


def test_latent_metrics_by_hand():
    from mjxmimic.ase_eval import latent_metrics
    dt, T, nq = 0.1, 11, 9
    t = np.arange(T) * dt
    q = np.zeros((2, T, nq))
    # latent 0: 1 m/s along x, turning left at 0.5 rad/s, joints at 0; the whole 1 s.
    q[0, :, 0] = t
    q[0, :, 3], q[0, :, 6] = np.cos(0.25 * t), np.sin(0.25 * t)          # yaw 0.5 t
    # latent 1: 2 m/s along y for 0.5 s, then falls (held afterwards); joints at 0.1 and 0.3 rad.
    q[1, :, 1] = 2.0 * np.minimum(t, 0.5)
    q[1, :, 3] = 1.0
    q[1, :, 7:] = (0.1, 0.3)
    alive = np.ones((2, T), bool)
    alive[1, 6:] = False
    m = latent_metrics(q, alive, np.array([False, True]), np.array([7, 8]), dt)
    a, b = m["latents"]
    assert a["mean_root_speed"] == pytest.approx(1.0) and a["mean_yaw_rate"] == pytest.approx(0.5)
    assert a["distance"] == pytest.approx(1.0) and a["duration_s"] == pytest.approx(1.0) and a["fell"] == 0.0
    assert b["mean_root_speed"] == pytest.approx(2.0) and b["mean_yaw_rate"] == pytest.approx(0.0, abs=1e-12)
    assert b["distance"] == pytest.approx(1.0) and b["duration_s"] == pytest.approx(0.5) and b["fell"] == 1.0
    assert m["fall_rate"] == 0.5
    assert m["diversity_rad"] == pytest.approx(np.sqrt((0.1 ** 2 + 0.3 ** 2) / 2))   # one pair, RMS over joints
    assert latent_metrics(q[:1], alive[:1], np.array([False]), np.array([7, 8]), dt)["diversity_rad"] is None


def test_latent_stills_one_row_per_latent(tmp_path):
    """view.render_rows in a subprocess (the GL backend is chosen before mujoco is imported)."""
    import subprocess
    import sys
    from mjxmimic import view
    backend = next((b for b in ("egl", "osmesa") if view.gl_backend_works(b)), None)
    if backend is None:
        pytest.skip("no headless OpenGL backend renders here")
    out = tmp_path / "rows.png"
    code = ("import numpy as np\nfrom mjxmimic.robots import load_robot\nfrom mjxmimic.view import render_rows\n"
            "k1 = load_robot('k1')\nq = np.tile(k1.default_qpos, (3, 4, 1)).astype(float)\n"
            "q[1, :, k1.qpos_idx] += 0.6\n"
            f"render_rows(k1.model, k1, q, {str(out)!r}, stills=2, width=64, height=48)\n")
    import os
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import imageio.v2 as imageio
    img = imageio.imread(out)
    assert img.shape[:2] == (3 * 48, 2 * 64)                        # 3 latents x 2 stills
    rows = img.reshape(3, 48, 2 * 64, -1).astype(float)
    assert np.abs(rows[0] - rows[1]).mean() > 1.0                   # the bent pose's row differs


def test_play_latents_refuses_a_non_ase_run(tmp_path, capsys):
    from mjxmimic import play
    run = tmp_path / "amp_run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"env": {"name": "amp", "robot": "k1",
                                                             "motion_file": "motions/k1/walk.npz"}}))
    assert play.main([str(run), "--latents", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --latents needs an ASE run (env kind 'ase'); {run} is a 'amp' run"]


@pytest.mark.slow
def test_play_latents_on_the_tiny_run(low_run, tmp_path, capsys):
    from mjxmimic import play
    out = tmp_path / "lat.json"
    assert play.main([str(low_run), "--latents", "2", "--no-video", "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert len(m["latents"]) == 2 and np.shape(m["z"]) == (2, 16) and m["iteration"] == 2
    np.testing.assert_allclose(np.linalg.norm(m["z"], axis=1), 1.0, atol=1e-5)
    for x in m["latents"]:
        assert x["mean_root_speed"] >= 0 and x["distance"] >= 0 and x["fell"] in (0.0, 1.0)
    assert m["diversity_rad"] > 0 and m["fall_rate"] == np.mean([x["fell"] for x in m["latents"]])
    assert "| latent | root speed (m/s)" in capsys.readouterr().out
    assert not (low_run / "play_latents.png").exists()           # --no-video: the figures only
