"""The learner options the tracking configs use (BeyondMimic / rsl_rl): Gaussian KL, the
KL-adaptive learning rate, value clipping, the asymmetric critic and env curriculum hooks; and KL
early stopping."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic.learning.networks import gaussian_kl
from mjxmimic.learning.optim import OptimizerConfig, learning_rate, make_optimizer
from mjxmimic.learning.ppo import PPOConfig, adapt_learning_rate, make_trainer, sgd_scan

try:
    from tests.toy_envs import PrivilegedReachEnv
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from toy_envs import PrivilegedReachEnv


def test_gaussian_kl_closed_form():
    # KL(N(0,1) || N(1, 2²)) = log 2 + (1 + 1)/(2·4) - 1/2 per dimension.
    kl = gaussian_kl(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.ones((3, 2)), jnp.full((3, 2), np.log(2.0)))
    np.testing.assert_allclose(kl, 2 * (np.log(2.0) + 0.25 - 0.5), rtol=1e-6)
    assert float(gaussian_kl(jnp.ones(4), jnp.zeros(4), jnp.ones(4), jnp.zeros(4))) == 0.0


def test_adaptive_learning_rate_rule():
    cfg = PPOConfig(desired_kl=0.01, lr_min=1e-5, lr_max=1e-2)
    adapt = adapt_learning_rate(cfg)
    assert adapt_learning_rate(PPOConfig()) is None
    opt = make_optimizer(OptimizerConfig("adam", 1e-3), adjustable_lr=True)
    s = opt.init({"w": jnp.zeros(3)})
    lr = lambda st: float(learning_rate(st))  # noqa: E731
    assert lr(adapt(s, {"kl": 0.05})) == pytest.approx(1e-3 / 1.5)      # KL > 2·target: slower
    assert lr(adapt(s, {"kl": 0.001})) == pytest.approx(1.5e-3)         # KL < target/2: faster
    assert lr(adapt(s, {"kl": 0.01})) == pytest.approx(1e-3)            # in the band: unchanged
    assert lr(adapt(s, {"kl": 0.0})) == pytest.approx(1e-3)             # no KL measured: unchanged
    hi = s
    for _ in range(40):
        hi = adapt(hi, {"kl": 0.0001})
    assert lr(hi) == pytest.approx(1e-2)                                # clamped at lr_max
    # The injected learning rate is the one the update uses: Adam's first step moves by ~lr.
    g = {"w": jnp.ones(3)}
    upd, _ = opt.update(g, adapt(s, {"kl": 0.05}), {"w": jnp.zeros(3)})
    np.testing.assert_allclose(upd["w"], -1e-3 / 1.5, rtol=1e-4)


def test_kl_stop_freezes_the_rest_of_the_scan():
    # loss -w: each SGD step (lr 1) adds 1 to w; the "KL" is w before the step.
    opt = make_optimizer(OptimizerConfig("sgd", 1.0, momentum=0.0))
    loss = lambda p, x: (-p["w"], {"kl": p["w"]})  # noqa: E731
    p0 = {"w": jnp.zeros(())}
    p, _, info = sgd_scan(opt, loss, p0, opt.init(p0), jnp.arange(5))
    assert float(p["w"]) == 5.0 and "kl_stopped" not in info                # off: every step
    p, _, info = sgd_scan(opt, loss, p0, opt.init(p0), jnp.arange(5), kl_stop=2.5)
    # steps at w = 0, 1, 2 run; at w = 3 the KL exceeds 2.5 and that step and the last are skipped
    assert float(p["w"]) == 3.0
    assert float(info["kl_stopped"]) == pytest.approx(2 / 5)


def test_config_validation():
    with pytest.raises(ValueError, match="activation"):
        PPOConfig(activation="swish2")
    with pytest.raises(ValueError, match="desired_kl"):
        PPOConfig(desired_kl=-1.0)
    with pytest.raises(ValueError, match="kl_stop"):
        PPOConfig(kl_stop=-1.0)


CFG = PPOConfig(num_envs=16, steps_per_iter=32, actor_hidden=(32, 32), critic_hidden=(32, 32), activation="elu",
                actor_epochs=3, critic_epochs=3, actor_batch_size=8.0, critic_batch_size=8.0,
                action_std=1.0, learn_action_std=True, action_entropy_weight=0.005, action_bound_weight=0.0,
                desired_kl=0.01, kl_stop=0.05, value_clip=0.2, actor_init_output_scale=0.1,
                actor_optimizer=OptimizerConfig("adam", 1e-3, grad_clip=1.0),
                critic_optimizer=OptimizerConfig("adam", 1e-3, grad_clip=1.0))


@pytest.fixture(scope="module")
def priv():
    env = PrivilegedReachEnv()
    return env, make_trainer(env, env.default_params(), CFG)


def test_asymmetric_critic_and_curriculum_hooks(priv):
    env, tr = priv
    ts = tr.init(jax.random.PRNGKey(0))
    # The actor's first layer reads the 2 actor entries; the critic all 6.
    assert ts.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (2, 32)
    assert ts.critic_params["params"]["MLP_0"]["Dense_0"]["kernel"].shape == (6, 32)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 6))
    np.testing.assert_array_equal(tr.policy(ts, obs), tr.policy(ts, obs[:, :2]))  # deployable on actor obs alone
    seen = 0.0
    for _ in range(3):
        prev = float(ts.curriculum["episodes"])
        ts, m = tr.iteration(ts)
        # The rollout ran with the curriculum state of the iteration's start...
        assert float(m["env/seen"]) == prev
        seen += float(m["num_episodes"])
        # ...and every finished episode of every env was folded in after it.
        assert float(ts.curriculum["episodes"]) == seen == float(m["curriculum/episodes"])
        assert CFG.lr_min <= float(m["learning_rate"]) <= CFG.lr_max
        assert np.isfinite(float(m["kl"])) and float(m["kl"]) >= 0.0
        assert 0.0 <= float(m["kl_stopped"]) <= 1.0
    assert seen > 0


def test_rsl_rl_options_learn_point_reach(priv):
    env, tr = priv
    ts = tr.init(jax.random.PRNGKey(3))
    before = float(tr.evaluate(ts, jax.random.PRNGKey(7))["episode_return"])
    for _ in range(40):
        ts, m = tr.iteration(ts)
    after = tr.evaluate(ts, jax.random.PRNGKey(7))
    assert float(after["episode_return"]) > before + 6.0, (before, after)
    # The learnable std moved away from its initial 1.0.
    assert not np.allclose(np.exp(ts.actor_params["params"]["log_std"]), 1.0)
