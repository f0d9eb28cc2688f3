"""ADD: the difference observation, the diff normaliser, the zero-positive loss and reward
against hand-computed values, and a few learner iterations on a toy env."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic.envs.add import add_disc_diff
from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.add import ADDConfig, ADDExtension, make_add_trainer
from mjxmimic.learning.amp import disc_loss
from mjxmimic.learning.optim import OptimizerConfig
from mjxmimic.motions.lib import MotionFrame

try:
    from tests.toy_envs import ADDPointEnv, PointReachEnv
except ImportError:
    from toy_envs import ADDPointEnv, PointReachEnv

AXES = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], np.float32)   # two hinges: z and x
BODIES = np.array([1, 2])   # body 0 plays the world body here and is left out


def _frame(shift=(0.0, 0.0, 0.0), q0=0.0, qd=(0.0, 0.0), vel=(0.0, 0.0, 0.0)):
    s = np.asarray(shift, np.float32)
    body_pos = np.array([[0, 0, 0], [0.1, 0.2, 0.9], [-0.3, 0.1, 0.4]], np.float32) + s
    return MotionFrame(root_pos=jnp.asarray(np.array([0.0, 0.0, 0.7], np.float32) + s),
                       root_rot=jnp.array([1.0, 0, 0, 0]), root_vel=jnp.asarray(vel, jnp.float32),
                       root_ang_vel=jnp.array([0.0, 0.0, 0.5]), joint_pos=jnp.array([q0, 0.3]),
                       joint_vel=jnp.asarray(qd, jnp.float32), body_pos=jnp.asarray(body_pos), body_rot=None)


def test_difference_observation_by_hand():
    th = 0.4
    ref = _frame()
    sim = _frame(shift=(0.1, -0.2, 0.05), q0=th, qd=(1.0, -2.0), vel=(0.3, 0.0, 0.0))
    d = np.asarray(add_disc_diff(ref, sim, BODIES, AXES))
    # root pos 3 | root rot 6 | 2 joints × 6 | 2 bodies × 3 | root vel 3 | ang vel 3 | dof vel 2
    expect = np.concatenate([[-0.1, 0.2, -0.05], np.zeros(6),
                             [1 - np.cos(th), -np.sin(th), 0, 0, 0, 0], np.zeros(6),   # hinge about z
                             np.zeros(6),                     # body positions relative to the root
                             [-0.3, 0, 0], np.zeros(3), [-1.0, 2.0]])
    assert d.shape == (3 + 6 + 12 + 6 + 3 + 3 + 2,)
    np.testing.assert_allclose(d, expect, atol=1e-6)
    np.testing.assert_array_equal(add_disc_diff(ref, ref, BODIES, AXES), 0.0)   # on the reference: 0
    # Without global_obs the root x, y drop out (each frame relative to its own root).
    local = np.asarray(add_disc_diff(ref, sim, BODIES, AXES, global_obs=False))
    np.testing.assert_allclose(local[:3], [0.0, 0.0, -0.05], atol=1e-6)


def test_diff_normalizer_by_hand():
    n = normlib.diff_init(3)
    np.testing.assert_array_equal(n.abs_mean, 1.0)
    n = normlib.diff_update(n, jnp.array([[1.0, -3.0, 0.0], [-1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(n.abs_mean, [1.0, 2.0, 0.0])
    n = normlib.diff_update(n, jnp.array([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]))   # 2 + 2 samples
    np.testing.assert_allclose(n.abs_mean, [2.5, 1.0, 0.0])
    np.testing.assert_allclose(normlib.diff_normalize(n, jnp.array([5.0, -1.0, 2e-4])), [2.0, -1.0, 2.0])
    np.testing.assert_array_equal(normlib.diff_normalize(n, jnp.zeros(3)), 0.0)   # 0 stays 0
    frozen = normlib.diff_update(n, jnp.ones((2, 3)), enabled=False)
    np.testing.assert_array_equal(frozen.abs_mean, n.abs_mean)


def test_zero_positive_loss_and_reward_by_hand():
    env = ADDPointEnv()
    cfg = ADDConfig(num_envs=2, steps_per_iter=3, disc_hidden=(), disc_buffer_size=16)
    ext = ADDExtension(env, cfg)
    assert cfg.disc_grad_penalty == 2.0 and cfg.disc_reward_scale == 2.0 and cfg.disc_logit_reg == 0.01
    state = ext.init(jax.random.PRNGKey(0), env.default_params())
    # A linear discriminator D(x) = w·x + b: ∂D/∂x = w everywhere, and w is the logit layer.
    w, b = np.array([0.5, -1.5], np.float32), np.float32(0.3)
    params = {"params": {"logits": {"kernel": jnp.asarray(w[:, None]), "bias": jnp.asarray([b])}}}
    norm = normlib.diff_update(state.disc_norm, jnp.array([[2.0, 1.0], [-2.0, 0.0]]))   # E|d| = (2, 0.5)
    state = state.replace(disc_params=params, disc_norm=norm)
    d = np.array([[1.0, 0.5], [-2.0, 1.0], [0.0, -0.25], [4.0, 0.0], [1.0, 1.0], [-1.0, 0.0]], np.float32)
    d_hat = d / np.array([2.0, 0.5])
    pos = ext.demo_samples(env.default_params(), jax.random.PRNGKey(1), 6)
    np.testing.assert_array_equal(pos, np.zeros((1, 2)))   # the only positive: d = 0
    np.testing.assert_array_equal(ext.demo_minibatch(pos, jnp.arange(4)), pos)
    loss, info = disc_loss(ext.disc.apply, params, ext.normalize(norm, jnp.asarray(d)), ext.normalize(norm, pos),
                           cfg.disc_grad_penalty, cfg.disc_logit_reg)
    sp = lambda x: np.log1p(np.exp(x))
    bce = 0.5 * (sp(-b) + np.mean(sp(d_hat @ w + b)))    # BCE(D(0), 1) and BCE(D(d̂), 0)
    w2 = float(w @ w)                                      # ½(mean‖∇D(d̂)‖² + ‖∇D(0)‖²) = ‖w‖²
    assert float(info["disc_bce"]) == pytest.approx(bce, rel=1e-5)
    assert float(loss) == pytest.approx(bce + 2.0 * w2 + 0.01 * w2, rel=1e-5)
    # Reward: r = 2·(-log max(1 - σ(D(d̂)), 1e-4)), task weight 0.
    from mjxmimic.learning.ppo import Transition
    z = jnp.zeros((3, 2))
    traj = Transition(obs=z, action=z, logp=z, mean=z, log_std=z, reward=jnp.ones((3, 2)), done=z, truncated=z,
                      terminal_obs=z, env_metrics={}, extra=jnp.asarray(d).reshape(3, 2, 2), curriculum=())
    _, rewards, _, _ = ext.prepare(state, traj, env.default_params(), jax.random.PRNGKey(2))
    sig = 1.0 / (1.0 + np.exp(-(d_hat @ w + b)))
    np.testing.assert_allclose(np.ravel(rewards), -2.0 * np.log(np.maximum(1.0 - sig, 1e-4)), rtol=1e-5)
    with pytest.raises(TypeError, match="disc_obs_size"):
        make_add_trainer(PointReachEnv(), {}, cfg)


def test_add_learner_on_a_toy_env():
    env = ADDPointEnv()
    cfg = ADDConfig(num_envs=8, steps_per_iter=8, actor_hidden=(16,), critic_hidden=(16,), disc_hidden=(16,),
                    action_std=0.2, actor_optimizer=OptimizerConfig("adam", 1e-3),
                    critic_optimizer=OptimizerConfig("adam", 1e-3), disc_optimizer=OptimizerConfig("adam", 3e-3),
                    disc_buffer_size=256, disc_replay_samples=16)
    trainer = make_add_trainer(env, env.default_params(), cfg)
    ts = trainer.init(jax.random.PRNGKey(0))
    history = []
    for _ in range(3):
        ts, m = trainer.iteration(ts)
        history.append(jax.device_get(m))
    for m in history:
        for k in ("disc_loss", "disc_bce", "disc_grad_penalty", "critic_loss", "style_reward_mean"):
            assert np.isfinite(m[k]), k
    acc = [h["disc_agent_acc"] for h in history]
    assert acc[-1] > acc[0], acc   # the discriminator learns to reject the agent's differences
    assert history[-1]["disc_loss"] < history[0]["disc_loss"]
    # The diff normaliser saw the agent's samples only (3 × 8 × 8); the replay took all of them.
    assert isinstance(ts.ext.disc_norm, normlib.DiffNormalizer) and float(ts.ext.disc_norm.count) == 192
    assert int(ts.ext.replay.count) == 192
