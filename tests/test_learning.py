"""PPO learner: maths against numpy references, learning on a toy task, checkpoints."""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mjxmimic.learning import losses
from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.checkpoint import CheckpointError, Checkpointer, init_or_restore, restore_train_state, train
from mjxmimic.learning.evaluation import evaluate_policy
from mjxmimic.learning.networks import GaussianActor, gaussian_log_prob
from mjxmimic.learning.optim import OptimizerConfig, make_optimizer
from mjxmimic.learning.ppo import (PolicyParams, PPOConfig, TrainState, resolve_action_map, make_policy_fn, make_trainer,
                                  minibatch_indices)

try:
    from tests.toy_envs import PointReachEnv
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from toy_envs import PointReachEnv


# ----------------------------------------------------------------------------- maths
def _mimickit_td_lambda_ref(r, next_v, done, gamma, lam):
    """Direct numpy transcription of the TD(λ) recursion (loop over time)."""
    T = r.shape[0]
    ret = np.zeros_like(r)
    ret[-1] = r[-1] + gamma * next_v[-1]
    for t in reversed(range(T - 1)):
        l_t = lam * (1.0 - done[t])
        ret[t] = r[t] + gamma * ((1.0 - l_t) * next_v[t] + l_t * ret[t + 1])
    return ret


def _random_rollout(rng, T=9, N=6):
    r = rng.normal(size=(T, N)).astype(np.float32)
    v = rng.normal(size=(T + 1, N)).astype(np.float32)  # V(obs_0..obs_T)
    done = rng.random((T, N)) < 0.3
    truncated = done & (rng.random((T, N)) < 0.5)
    # V(terminal_obs_t) equals V(obs_{t+1}) unless the env reset at t.
    term_v = np.where(done, rng.normal(size=(T, N)), v[1:]).astype(np.float32)
    return r, v[:-1], v[-1], term_v, done, truncated


def test_td_lambda_matches_numpy_references():
    rng = np.random.default_rng(0)
    gamma, lam = 0.99, 0.95
    r, v, v_last, term_v, done, truncated = _random_rollout(rng)
    assert done.any() and truncated.any() and (done & ~truncated).any()
    next_v = np.asarray(losses.bootstrap_values(term_v, done, truncated))
    # Failures contribute 0, timeouts bootstrap from V(terminal_obs).
    np.testing.assert_array_equal(next_v[done & ~truncated], 0.0)
    np.testing.assert_array_equal(next_v[truncated], term_v[truncated])
    got = np.asarray(losses.td_lambda_returns(jnp.asarray(r), jnp.asarray(next_v), jnp.asarray(done), gamma, lam))

    np.testing.assert_allclose(got, _mimickit_td_lambda_ref(r, next_v, done.astype(np.float32), gamma, lam),
                               rtol=1e-5, atol=1e-5)

    # Independent reference: textbook GAE with done/truncated handling, returns = A + V.
    T, N = r.shape
    adv = np.zeros_like(r)
    last = np.zeros(N, np.float32)
    for t in reversed(range(T)):
        terminated = done[t] & ~truncated[t]
        boot = np.where(terminated, 0.0, term_v[t])
        delta = r[t] + gamma * boot - v[t]
        cont = 0.0 if t == T - 1 else 1.0
        last = delta + gamma * lam * cont * (1.0 - done[t]) * last
        adv[t] = last
    np.testing.assert_allclose(got, adv + v, rtol=1e-5, atol=1e-5)


def test_advantage_normalization_and_clip():
    x = jnp.asarray(np.random.default_rng(1).standard_cauchy(500).astype(np.float32))
    norm, mean, std = losses.normalize_advantages(x, 4.0)
    np.testing.assert_allclose(mean, np.mean(np.asarray(x)), rtol=1e-5)
    np.testing.assert_allclose(std, np.std(np.asarray(x), ddof=1), rtol=1e-4)
    assert float(jnp.max(jnp.abs(norm))) == pytest.approx(4.0)
    expect = np.clip((np.asarray(x) - np.mean(np.asarray(x))) / np.std(np.asarray(x), ddof=1), -4, 4)
    np.testing.assert_allclose(norm, expect, rtol=1e-4, atol=1e-5)


def test_normalizer_matches_numpy_and_freezes():
    rng = np.random.default_rng(2)
    batches = [rng.normal(loc=i, scale=1 + i, size=(50 + 10 * i, 3)).astype(np.float32) for i in range(4)]
    batches = [np.concatenate([b, np.full((len(b), 1), 7.0, np.float32)], 1) for b in batches]  # constant col
    norm = normlib.init(4)
    for b in batches:
        norm = normlib.update(norm, jnp.asarray(b))
    allx = np.concatenate(batches)
    np.testing.assert_allclose(norm.mean, allx.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.std[:3], allx.std(0)[:3], rtol=1e-4)
    assert float(norm.std[3]) == pytest.approx(1e-4, rel=0.2)  # min_std floor, as MimicKit
    assert float(norm.count) == len(allx)
    frozen = normlib.update(norm, jnp.asarray(batches[0] * 100), enabled=jnp.asarray(False))
    for a, b in zip(jax.tree_util.tree_leaves(frozen), jax.tree_util.tree_leaves(norm)):
        np.testing.assert_array_equal(a, b)
    z = normlib.normalize(norm, jnp.asarray(allx[:5] * 1000), clip=10.0)
    assert float(jnp.max(jnp.abs(z))) == 10.0


def test_action_bound_penalty_and_action_map():
    mean = jnp.array([[0.5, -1.5, 2.0], [1.0, -3.0, 0.0]])
    np.testing.assert_allclose(losses.action_bound_loss(mean), [0.25 + 1.0, 4.0])
    np.testing.assert_allclose(losses.action_bound_loss(mean, low=jnp.array([0.0, -2.0, 0.0]),
                                                        high=jnp.array([1.0, 1.0, 1.5])), [0.25, 1.0])
    env = PointReachEnv()
    offset, scale = resolve_action_map(env, PPOConfig(action_low=(-2.0, 0.0), action_high=(2.0, 1.0)))
    np.testing.assert_allclose(offset, [0.0, 0.5])
    np.testing.assert_allclose(scale, [2.0, 0.5])
    actor = GaussianActor(2, hidden=(8,), init_std=0.3)
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    params = jax.tree_util.tree_map(jnp.zeros_like, params)  # mean 0 -> action = bound mid-point
    policy = make_policy_fn(actor, offset, scale)
    pp = PolicyParams(params, normlib.init(4))
    np.testing.assert_allclose(policy(pp, jnp.ones((3, 4))), np.tile([0.0, 0.5], (3, 1)))
    a = policy(pp, jnp.ones((4000, 4)), key=jax.random.PRNGKey(1), deterministic=False)
    np.testing.assert_allclose(np.std(np.asarray(a), 0), [2.0 * 0.3, 0.5 * 0.3], rtol=0.08)
    with pytest.raises(ValueError):
        policy(pp, jnp.ones((1, 4)), deterministic=False)


def test_actor_std_modes_and_log_prob():
    fixed = GaussianActor(3, hidden=(8,), init_std=0.05)
    p = fixed.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)))
    assert "log_std" not in p["params"]  # FIXED: not a parameter, so never trained
    mean, log_std = fixed.apply(p, jnp.ones((2, 5)))
    np.testing.assert_allclose(log_std, np.log(0.05) * np.ones((2, 3)), rtol=1e-6)
    assert float(jnp.max(jnp.abs(mean))) < 0.2  # output layer init scale 0.01
    learned = GaussianActor(3, hidden=(8,), init_std=0.2, learn_std=True)
    p2 = learned.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)))
    np.testing.assert_allclose(p2["params"]["log_std"], np.log(0.2) * np.ones(3), rtol=1e-6)
    x, m, ls = np.array([0.3, -1.0]), np.array([0.0, 0.5]), np.array([-1.0, 0.2])
    ref = np.sum(-0.5 * ((x - m) / np.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi))
    assert float(gaussian_log_prob(jnp.asarray(x), jnp.asarray(m), jnp.asarray(ls))) == pytest.approx(ref, rel=1e-5)


def test_sgd_matches_torch_momentum_and_coupled_weight_decay():
    # torch.optim.SGD(lr=.1, momentum=.9, weight_decay=.1) on grads 1 then 2 from p=1:
    # d0=1.1, buf=1.1, p=0.89; d1=2.089, buf=3.079, p=0.5821.
    opt = make_optimizer(OptimizerConfig("sgd", 0.1, momentum=0.9, weight_decay=0.1))
    p = jnp.array(1.0)
    s = opt.init(p)
    for g, expect in [(1.0, 0.89), (2.0, 0.5821)]:
        u, s = opt.update(jnp.array(g), s, p)
        p = optax.apply_updates(p, u)
        assert float(p) == pytest.approx(expect, rel=1e-6)
    clipped = make_optimizer(OptimizerConfig("sgd", 1.0, momentum=0.0, grad_clip=1.0))
    u, _ = clipped.update({"a": jnp.array([3.0, 4.0])}, clipped.init({"a": jnp.zeros(2)}))
    np.testing.assert_allclose(u["a"], [-0.6, -0.8], rtol=1e-6)
    with pytest.raises(ValueError):
        make_optimizer(OptimizerConfig("rmsprop"))


def test_minibatch_indices_are_shuffled_epochs():
    idx = np.asarray(minibatch_indices(jax.random.PRNGKey(0), 40, 20, 6))  # 3 epochs of 2 batches
    assert idx.shape == (6, 20)
    for e in range(3):
        assert sorted(idx[2 * e:2 * e + 2].ravel()) == list(range(40))
    assert not np.array_equal(idx[0:2], idx[2:4])


# ----------------------------------------------------------------------------- trainer
CFG = PPOConfig(
    num_envs=16, steps_per_iter=32, actor_hidden=(32, 32), critic_hidden=(32, 32), action_std=0.2,
    # Adam and a wide std so the toy task learns in ~60 tiny iterations on CPU.
    actor_optimizer=OptimizerConfig("adam", 1e-3), critic_optimizer=OptimizerConfig("adam", 3e-3))


@pytest.fixture(scope="module")
def reach():
    env = PointReachEnv()
    return make_trainer(env, env.default_params(), CFG)


def test_iteration_metrics_and_no_host_transfers(reach):
    ts = reach.init(jax.random.PRNGKey(0))
    ts1, m = reach.iteration(ts)
    # The whole iteration is one jitted call on device-resident data: nothing crosses.
    with jax.transfer_guard("disallow"):
        ts2, m2 = reach.iteration(ts1)
    m = {k: float(v) for k, v in m.items()}
    for k in ["reward_mean", "episode_return", "episode_length", "critic_loss", "actor_loss", "clip_frac",
              "approx_kl", "action_bound_loss", "env/dist", "adv_std"]:
        assert np.isfinite(m[k]), k
    # 25-step timeouts, 32 steps per iteration: exactly one episode per env ends in iteration 1.
    assert m["num_episodes"] == 16 and m["episode_length"] == 25.0
    assert 0.0 <= m["clip_frac"] <= 1.0 and m["approx_kl"] >= 0.0
    assert int(ts2.iteration) == 2
    assert float(ts1.obs_norm.count) == 16 * 32 and float(ts2.obs_norm.count) == 2 * 16 * 32
    assert not np.array_equal(ts.actor_params["params"]["mean"]["kernel"], ts1.actor_params["params"]["mean"]["kernel"])


def test_ppo_improves_point_reach(reach):
    ts = reach.init(jax.random.PRNGKey(1))
    before = float(reach.evaluate(ts, jax.random.PRNGKey(7))["episode_return"])
    for _ in range(60):
        ts, m = reach.iteration(ts)
    after = reach.evaluate(ts, jax.random.PRNGKey(7))
    # The initial (near-still) policy scores ~4; moving to the target scores ~18 of max 25.
    assert float(after["episode_return"]) > before + 8.0, (before, after)
    assert float(after["step/dist"]) < 0.5
    assert int(after["episodes"]) >= 32
    # fewer episodes than envs: one each on a batch of that size, not one per training env
    assert int(reach.evaluate(ts, jax.random.PRNGKey(7), 8)["episodes"]) == 8


def test_evaluate_policy_counts_episodes_in_closed_form():
    env = PointReachEnv()
    params = env.default_params()

    def ev(action):
        fn = jax.jit(lambda k: evaluate_policy(env, params, lambda obs: jnp.full((obs.shape[0], 2), action), k,
                                                 num_envs=4, num_episodes=10, max_steps=1000))
        return jax.device_get(fn(jax.random.PRNGKey(3)))

    # Standing still: every episode times out after exactly 25 steps; 3 episodes per env (ceil(10/4)).
    m = ev(0.0)
    assert int(m["episodes"]) == 12 and int(m["steps"]) == 75
    assert float(m["episode_length"]) == 25.0 and float(m["full_length"]) == 1.0
    # the point never moves, so the distance at an episode's end is its distance at every step
    np.testing.assert_allclose(m["step/dist"], m["end/dist"], rtol=1e-5)
    np.testing.assert_allclose(m["episode_return"], 25.0 * m["reward_mean"], rtol=1e-5)
    # Pushing +x at 0.1/step from x0 in [-1, 1]: leaves the 1.5 box after 6 to 25 steps, so all fail.
    m = ev(1.0)
    assert float(m["full_length"]) == 0.0 and 6.0 <= float(m["episode_length"]) <= 25.0
    assert int(m["episodes"]) == 12


def _assert_trees_bitwise_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_checkpoint_resume_is_bitwise_identical(reach, tmp_path):
    key = jax.random.PRNGKey(3)
    straight = train(reach, reach.init(key), 6)

    ck = Checkpointer(tmp_path / "run", save_every=2, max_to_keep=2)
    first = train(reach, reach.init(key), 3, checkpointer=ck)  # saves 2, then 3 at exit
    ck.close()
    assert sorted(Checkpointer(tmp_path / "run").steps()) == [2, 3]  # keep-last-k

    ck2 = Checkpointer(tmp_path / "run", save_every=2, max_to_keep=2)
    resumed = init_or_restore(reach, jax.random.PRNGKey(999), ck2)  # key unused: checkpoint wins
    assert isinstance(resumed, TrainState) and int(resumed.iteration) == 3
    _assert_trees_bitwise_equal(resumed, first)
    resumed = train(reach, resumed, 6, checkpointer=ck2)
    ck2.close()
    _assert_trees_bitwise_equal(resumed, straight)
    # An older checkpoint can be picked explicitly.
    s4 = restore_train_state(str(tmp_path / "run"), reach.abstract_state(), step=4)
    assert int(s4.iteration) == 4


def test_checkpoint_errors_are_clear(reach, tmp_path):
    template = reach.abstract_state()
    with pytest.raises(CheckpointError, match="does not exist"):
        restore_train_state(str(tmp_path / "nope"), template)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints"):
        restore_train_state(str(tmp_path / "empty"), template)
    with Checkpointer(tmp_path / "bad") as ck:
        ck.save(reach.init(jax.random.PRNGKey(0)))
    for root, _, files in os.walk(tmp_path / "bad"):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        restore_train_state(str(tmp_path / "bad"), template)


def test_minibatch_blocks_stay_within_their_envs():
    """One block is the global shuffle (same key, same order); B blocks draw batch/B rows from each
    block, every row of a block exactly once per epoch, and ``take`` reads block-local rows."""
    import dataclasses

    from mjxmimic.learning.ppo import Minibatches, PPOConfig, minibatch_indices
    T, N, key = 3, 8, jax.random.PRNGKey(4)
    cfg = PPOConfig(num_envs=N, steps_per_iter=T)
    one = Minibatches.of(cfg)
    np.testing.assert_array_equal(one.indices(key, 12, 4)[:, 0], minibatch_indices(key, T * N, 12, 4))
    x = jnp.arange(T * N)  # sample id = t·N + env
    np.testing.assert_array_equal(one.layout(x)[0], x)
    two = Minibatches.of(dataclasses.replace(cfg, shuffle_blocks=2))
    blocks = two.layout(x)
    assert blocks.shape == (2, T * N // 2)
    for b in range(2):  # block b holds envs [4b, 4b+4) of every step
        assert set(np.asarray(blocks[b]) % N) == set(range(4 * b, 4 * b + 4))
    idx = two.indices(key, 6, 4)  # 6 per minibatch = 3 per block; 4 steps = one epoch of 12 rows per block
    assert idx.shape == (4, 2, 3)
    for b in range(2):
        assert sorted(np.asarray(idx[:, b]).ravel()) == list(range(12))
    rows = Minibatches.take(blocks, idx[0])
    np.testing.assert_array_equal(rows, np.concatenate([np.asarray(blocks[b])[np.asarray(idx[0, b])] for b in range(2)]))
    try:
        Minibatches.of(dataclasses.replace(cfg, num_envs=9, shuffle_blocks=2))
        raise AssertionError("9 envs in 2 blocks should be refused")
    except ValueError as e:
        assert "split evenly" in str(e)
