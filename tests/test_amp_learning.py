"""AMP: discriminator loss/reward maths, replay buffer, and learning on a toy env."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.amp import (AMPConfig, AMPExtension, disc_loss, make_amp_trainer, replay_init, replay_push,
                                   replay_sample, style_reward)
from mjxmimic.learning.networks import Discriminator
from mjxmimic.learning.optim import OptimizerConfig
from mjxmimic.learning.ppo import Transition

try:
    from tests.toy_envs import AMPPointEnv, PointReachEnv
except ImportError:
    from toy_envs import AMPPointEnv, PointReachEnv


def _softplus(x):
    return np.log1p(np.exp(x))


def test_disc_loss_on_linear_discriminator_by_hand():
    # hidden=() makes D(x) = w·x + b, so ∂D/∂x = w for every sample and the output layer is w.
    disc = Discriminator(hidden=())
    w = np.array([0.5, -1.0, 2.0], np.float32)
    b = np.float32(0.3)
    params = {"params": {"logits": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.asarray([b])}}}
    rng = np.random.default_rng(0)
    agent, demo = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    loss, info = disc_loss(disc.apply, params, jnp.asarray(agent), jnp.asarray(demo), grad_penalty=10.0,
                           logit_reg=0.01)
    la, ld = agent @ w + b, demo @ w + b
    bce = 0.5 * (np.mean(_softplus(la)) + np.mean(_softplus(-ld)))  # BCE(agent,0), BCE(demo,1)
    w2 = float(w @ w)
    assert float(info["disc_bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(info["disc_grad_penalty"]) == pytest.approx(w2, rel=1e-5)  # ½(‖w‖² + ‖w‖²)
    assert float(info["disc_logit_loss"]) == pytest.approx(w2, rel=1e-5)
    assert float(loss) == pytest.approx(bce + 10.0 * w2 + 0.01 * w2, rel=1e-5)
    assert float(info["disc_agent_acc"]) == pytest.approx(np.mean(la < 0))
    assert float(info["disc_demo_acc"]) == pytest.approx(np.mean(ld > 0))


def test_grad_penalty_per_sample_on_both_sets_for_a_deep_disc():
    disc = Discriminator(hidden=(16, 8))
    params = disc.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)))
    agent = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    demo = 2.0 + jax.random.normal(jax.random.PRNGKey(2), (3, 5))
    _, info = jax.jit(lambda p: disc_loss(disc.apply, p, agent, demo, grad_penalty=10.0, logit_reg=0.0))(params)
    g = jax.jit(jax.vmap(jax.grad(lambda x: disc.apply(params, x[None])[0])))
    ref = 0.5 * (jnp.mean(jnp.sum(g(demo) ** 2, -1)) + jnp.mean(jnp.sum(g(agent) ** 2, -1)))
    assert float(info["disc_grad_penalty"]) == pytest.approx(float(ref), rel=1e-5)
    # Double backprop through the penalty gives finite, non-zero parameter gradients.
    grads = jax.jit(jax.grad(lambda p: disc_loss(disc.apply, p, agent, demo)[0]))(params)
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(grads)])
    assert np.all(np.isfinite(flat)) and np.abs(flat).max() > 0


def test_style_reward_formula():
    logits = np.array([-5.0, 0.0, 3.0, 9.0, 20.0], np.float32)
    ref = -np.log(np.maximum(1.0 - 1.0 / (1.0 + np.exp(-logits.astype(np.float64))), 1e-4)) * 2.0
    np.testing.assert_allclose(style_reward(jnp.asarray(logits), 2.0), ref, rtol=1e-5)
    assert float(style_reward(jnp.asarray(0.0), 2.0)) == pytest.approx(2 * np.log(2.0), rel=1e-6)


def test_replay_buffer_ring_semantics():
    buf = replay_init(10, 1)
    x1 = jnp.arange(6, dtype=jnp.float32)[:, None]
    buf = replay_push(buf, x1, jax.random.PRNGKey(0), samples_when_full=3)
    assert int(buf.count) == 6 and int(buf.head) == 6
    assert sorted(np.asarray(buf.data[:6, 0])) == list(range(6))
    x2 = 100 + jnp.arange(6, dtype=jnp.float32)[:, None]
    buf = replay_push(buf, x2, jax.random.PRNGKey(1), samples_when_full=3)  # not full yet: all 6
    assert int(buf.count) == 10 and int(buf.head) == 2
    assert sorted(np.asarray(buf.data[[6, 7, 8, 9, 0, 1], 0])) == list(range(100, 106))
    before = np.asarray(buf.data[:, 0]).copy()
    x3 = 200 + jnp.arange(6, dtype=jnp.float32)[:, None]
    buf = replay_push(buf, x3, jax.random.PRNGKey(2), samples_when_full=3)  # full: only 3 enter
    after = np.asarray(buf.data[:, 0])
    assert int(buf.head) == 5 and int(buf.count) == 10
    assert set(after[2:5]) <= set(range(200, 206)) and len(set(after[2:5])) == 3
    np.testing.assert_array_equal(np.delete(after, [2, 3, 4]), np.delete(before, [2, 3, 4]))
    partial = replay_push(replay_init(10, 1), x1[:4], jax.random.PRNGKey(3), 3)
    idx = np.asarray(replay_sample(partial, jax.random.PRNGKey(4), (1000,)))
    assert idx.min() == 0 and idx.max() == 3  # only filled slots are replayed


def test_reward_mix_uses_task_and_style_weights():
    env = AMPPointEnv()
    cfg = AMPConfig(num_envs=2, steps_per_iter=3, disc_hidden=(8,), task_reward_weight=0.5,
                    disc_reward_weight=2.0, disc_reward_scale=2.0, disc_buffer_size=16)
    ext = AMPExtension(env, cfg)
    state = ext.init(jax.random.PRNGKey(0), env.default_params())
    disc_obs = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 2))
    task = jnp.arange(6, dtype=jnp.float32).reshape(3, 2)
    z = jnp.zeros((3, 2))
    traj = Transition(obs=z, action=z, logp=z, mean=z, log_std=z, reward=task, done=z, truncated=z,
                      terminal_obs=z, env_metrics={}, extra=disc_obs, curriculum=())
    new_state, rewards, demo, _ = ext.prepare(state, traj, env.default_params(), jax.random.PRNGKey(2))
    logits = ext.disc.apply(state.disc_params, normlib.normalize(state.disc_norm, disc_obs.reshape(6, 2)))
    expect = 0.5 * task + 2.0 * style_reward(logits, 2.0).reshape(3, 2)
    np.testing.assert_allclose(rewards, expect, rtol=1e-6)
    assert demo.shape == (6, 2) and int(new_state.replay.count) == 6
    with pytest.raises(TypeError, match="disc_obs_size"):
        make_amp_trainer(PointReachEnv(), {}, cfg)


def test_disc_input_noise_only_in_the_discriminator_loss():
    """disc_input_noise perturbs the discriminator's training inputs (agent and demo) and
    nothing else: the style reward and the fresh agent accuracy read clean inputs."""
    env = AMPPointEnv()
    p = env.default_params()
    base = AMPConfig(num_envs=4, steps_per_iter=3, disc_hidden=(8,), disc_buffer_size=64, disc_replay_samples=4)
    disc_obs = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
    z = jnp.zeros((3, 4))
    traj = Transition(obs=z, action=z, logp=z, mean=z, log_std=z, reward=z, done=z, truncated=z,
                      terminal_obs=z, env_metrics={}, extra=disc_obs, curriculum=())

    def one(noise):
        ext = AMPExtension(env, dataclasses.replace(base, disc_input_noise=noise))
        st = ext.init(jax.random.PRNGKey(0), p)
        st1, rewards, demo, m = ext.prepare(st, traj, p, jax.random.PRNGKey(2))
        st2, info = ext.update(st1, traj, demo, jnp.bool_(True), jax.random.PRNGKey(3))
        return ext, st, rewards, m, st2, info

    ext, st, r0, m0, s0, i0 = one(0.0)
    _, _, r1, m1, s1, i1 = one(3.0)
    logits = ext.disc.apply(st.disc_params, normlib.normalize(st.disc_norm, disc_obs.reshape(12, 2)))
    assert float(m0["disc_agent_acc_fresh"]) == pytest.approx(float(jnp.mean(logits < 0)))
    np.testing.assert_array_equal(r0, r1)                      # the reward sees clean inputs
    assert float(m1["disc_agent_acc_fresh"]) == float(m0["disc_agent_acc_fresh"])
    w0, w1 = jax.tree_util.tree_leaves(s0.disc_params), jax.tree_util.tree_leaves(s1.disc_params)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(w0, w1)) > 1e-6   # the loss saw noise
    assert float(i1["disc_loss"]) != float(i0["disc_loss"])
    with pytest.raises(ValueError, match="disc_input_noise"):
        AMPConfig(disc_input_noise=-1.0)


# ----------------------------------------------------------------------------- learning
AMP_CFG = AMPConfig(
    num_envs=16, steps_per_iter=32, actor_hidden=(32, 32), critic_hidden=(32, 32), disc_hidden=(32, 32),
    action_std=0.2, actor_optimizer=OptimizerConfig("adam", 1e-3), critic_optimizer=OptimizerConfig("adam", 3e-3),
    disc_optimizer=OptimizerConfig("adam", 1e-3, weight_decay=1e-4), disc_buffer_size=4096, disc_replay_samples=256,
    # With a 2-D disc obs and a narrow demo cloud, MimicKit's penalty of 10 flattens D so much
    # that the style reward barely varies; 0.1 keeps the toy learnable in ~150 tiny iterations.
    disc_grad_penalty=0.1)


@pytest.fixture(scope="module")
def amp_run():
    env = AMPPointEnv()
    trainer = make_amp_trainer(env, env.default_params(), AMP_CFG)
    ts = trainer.init(jax.random.PRNGKey(0))
    before = trainer.evaluate(ts, jax.random.PRNGKey(5))
    history = []
    for _ in range(150):
        ts, m = trainer.iteration(ts)
        history.append(m)
    history = jax.device_get(history)
    return trainer, ts, before, trainer.evaluate(ts, jax.random.PRNGKey(5)), history


def test_amp_metrics_present(amp_run):
    _, ts, _, _, history = amp_run
    m = history[0]
    for k in ["disc_loss", "disc_grad_penalty", "disc_logit_loss", "disc_agent_acc", "disc_demo_acc",
              "style_reward_mean", "task_reward_mean", "reward_mean", "critic_loss", "env/demo_dist"]:
        assert np.isfinite(m[k]), k
    # Pure AMP (task weight 0): the learning reward is the style reward.
    assert m["reward_mean"] == pytest.approx(m["style_reward_mean"], rel=1e-5)
    assert int(ts.ext.replay.count) == 4096  # filled from rollouts


def test_amp_disc_beats_chance_and_agent_moves_to_demo(amp_run):
    _, _, before, after, history = amp_run
    acc = np.mean([0.5 * (h["disc_agent_acc"] + h["disc_demo_acc"]) for h in history])
    assert acc > 0.65, acc
    d0, d1 = float(before["step/demo_dist"]), float(after["step/demo_dist"])
    assert d1 < 0.6 * d0, (d0, d1)  # deterministic policy ends nearer the demo cloud
    style = [h["style_reward_mean"] for h in history]
    assert np.mean(style[-20:]) > np.mean(style[:5]) + 0.1


# ----------------------------------------------------------------------------- checkpoints
def test_exact_checkpoints_resume_bitwise_and_light_ones_leave_out_the_replay_buffer(tmp_path):
    from mjxmimic.learning.checkpoint import Checkpointer, init_or_restore, saved_nbytes, train
    cfg = dataclasses.replace(AMP_CFG, num_envs=8, steps_per_iter=8, actor_hidden=(8,), critic_hidden=(8,),
                              disc_hidden=(8,), disc_buffer_size=256, disc_replay_samples=16)
    env = AMPPointEnv()
    trainer = make_amp_trainer(env, env.default_params(), cfg)
    key = jax.random.PRNGKey(4)
    straight = train(trainer, trainer.init(key), 4)
    # The light checkpoint holds exactly the replay buffer's 256 x 2 float32 less.
    abstract = trainer.abstract_state()
    assert saved_nbytes(abstract, exact=True) - saved_nbytes(abstract) == 256 * 2 * 4
    for exact in (True, False):
        d = tmp_path / f"exact{exact}"
        with Checkpointer(d, save_every=2, exact=exact) as ck:
            half = train(trainer, trainer.init(key), 2, checkpointer=ck)
        with Checkpointer(d, save_every=2, exact=exact) as ck:
            resumed = init_or_restore(trainer, None, ck)
            ext = resumed.ext.replay
            if exact:
                _assert_bitwise(resumed, half)
            else:  # everything but the buffer, which restarts empty and refills from the next rollouts
                _assert_bitwise(resumed.replace(ext=resumed.ext.replace(replay=half.ext.replay)), half)
                assert int(ext.count) == 0 and int(ext.head) == 0 and not np.asarray(ext.data).any()
            resumed = train(trainer, resumed, 4, checkpointer=ck)
        if exact:
            _assert_bitwise(resumed, straight)
        else:
            assert int(resumed.ext.replay.count) == 2 * 8 * 8 and int(straight.ext.replay.count) == 256
            assert not np.array_equal(resumed.ext.replay.data, straight.ext.replay.data)


def _assert_bitwise(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
