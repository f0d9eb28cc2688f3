"""Run by tests/test_parallel.py in a fresh process with two simulated CPU devices
(XLA_FLAGS must be set before JAX starts). Prints OK when every check passed."""
import dataclasses
import logging
import os
import sys
import tempfile

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from toy_envs import AMPPointEnv, PointReachEnv  # noqa: E402

from mjxmimic.learning import (AMPConfig, Checkpointer, OptimizerConfig, PPOConfig, init_or_restore,  # noqa: E402
                               make_amp_trainer, make_trainer)
from mjxmimic.learning.parallel import env_mesh  # noqa: E402
from mjxmimic.learning.ppo import abstract_like  # noqa: E402

assert len(jax.devices()) == 2, jax.devices()
ADAM = dict(actor_optimizer=OptimizerConfig("adam", 1e-3), critic_optimizer=OptimizerConfig("adam", 3e-3))


def close(a, b, what):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=2e-4, atol=2e-6,
                                   err_msg=what)


def split_over_two(x):
    return x.sharding.num_devices == 2 and not x.sharding.is_fully_replicated


def compare(make, env, cfg, iters):
    # The mesh trainer draws minibatches within each device's envs (shuffle_blocks 0 = one block per
    # device); one device reproduces that with two blocks.
    one = make(env, env.default_params(), dataclasses.replace(cfg, shuffle_blocks=2))
    two = make(env, env.default_params(), cfg, mesh=env_mesh(2))
    a, b = one.init(jax.random.PRNGKey(0)), two.init(jax.random.PRNGKey(0))
    assert split_over_two(b.env_state.obs) and split_over_two(b.ep_return)
    assert all(x.sharding.is_fully_replicated for x in jax.tree_util.tree_leaves(b.actor_params))
    close(a, b, "init")
    for i in range(iters):
        a, ma = one.iteration(a)
        b, mb = two.iteration(b)
        close(a.actor_params, b.actor_params, f"actor after {i + 1}")
        close(a.critic_params, b.critic_params, f"critic after {i + 1}")
        close(ma, mb, f"metrics {i + 1}")
    assert split_over_two(b.env_state.obs)
    return two, b


# PPO: two devices follow one device; a checkpoint restores sharded and resumes bitwise.
two, b = compare(make_trainer, PointReachEnv(), PPOConfig(num_envs=16, steps_per_iter=8, actor_hidden=(16,),
                                                           critic_hidden=(16,), action_std=0.2, **ADAM), 3)
with tempfile.TemporaryDirectory() as d:
    ck = Checkpointer(d, save_every=1)
    ck.save(b, 3)
    ck.wait()
    r = init_or_restore(two, jax.random.PRNGKey(9), ck)
    ck.close()
assert split_over_two(r.env_state.obs)
(b2, _), (r2, _) = two.iteration(b), two.iteration(r)
for x, y in zip(jax.tree_util.tree_leaves(b2), jax.tree_util.tree_leaves(r2)):
    assert np.array_equal(np.asarray(x), np.asarray(y)), "resume on two devices is not bitwise identical"

# The evaluation (train --eval-every) of a restored sharded state: compiled ahead from abstract_like,
# then called without compiling again, with the result one device gives for the same policy.
compiled = []
log = logging.getLogger("jax")
counter = type("Count", (logging.Handler,), {"emit": lambda self, rec: compiled.append(rec.getMessage())})()
log.addHandler(counter)
log.propagate = False  # counted, not printed
jax.config.update("jax_log_compiles", True)
two.compile_evaluate(abstract_like(r), 8, 100)
ev_two = two.evaluate(r, jax.random.PRNGKey(4), 8, 100)
jax.config.update("jax_log_compiles", False)
log.removeHandler(counter)
log.propagate = True
assert sum("XLA compilation of jit(_evaluate)" in m for m in compiled) == 1, compiled
one = make_trainer(PointReachEnv(), PointReachEnv().default_params(), two.cfg)
ev_one = one.evaluate(jax.tree_util.tree_map(np.asarray, r), jax.random.PRNGKey(4), 8, 100)
assert int(ev_two["episodes"]) == 8
close(ev_one, ev_two, "evaluation on two devices")

# AMP (discriminator, replay buffer) on two devices follows one device.
compare(make_amp_trainer, AMPPointEnv(), AMPConfig(num_envs=16, steps_per_iter=8, actor_hidden=(16,),
                                                   critic_hidden=(16,), disc_hidden=(16,), disc_buffer_size=256,
                                                   disc_replay_samples=32, action_std=0.2, **ADAM), 2)

try:
    make_trainer(PointReachEnv(), {}, PPOConfig(num_envs=15), mesh=env_mesh(2))
    raise AssertionError("15 envs on 2 devices should be refused")
except ValueError as e:
    assert "do not split evenly" in str(e)
# The CLI over a real MJX env with its envs split across devices: tests/test_distributed.py
# (two processes, one device each: the same sharded program, and the stop/resume path).
print("OK")
