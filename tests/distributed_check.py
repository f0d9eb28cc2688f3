"""Run by tests/test_distributed.py as one of two processes (``python distributed_check.py
HOST:PORT PROCESS_ID``) joined by jax.distributed on this machine's CPU (gloo collectives), one
device each. Prints OK when every check passed.

The envs split over both processes train like all of them on one device of one process: the
same maths, the sums over envs only added in another order (each process sums its half, then the
halves are added), so the tolerance is float rounding (2e-4 relative), as for two devices of one
process (tests/parallel_check.py)."""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from mjxmimic.learning import distributed as dist  # noqa: E402

assert dist.initialize(sys.argv[1], 2, int(sys.argv[2]), timeout_s=120)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from toy_envs import AMPPointEnv, PointReachEnv  # noqa: E402

from mjxmimic.learning import AMPConfig, OptimizerConfig, PPOConfig, make_amp_trainer, make_trainer  # noqa: E402
from mjxmimic.learning.parallel import env_mesh  # noqa: E402

assert jax.process_count() == 2 and len(jax.devices()) == 2 and len(jax.local_devices()) == 1
ADAM = dict(actor_optimizer=OptimizerConfig("adam", 1e-3), critic_optimizer=OptimizerConfig("adam", 3e-3))
mesh = env_mesh()
assert [d.process_index for d in mesh.devices] == [0, 1]


def local(tree):
    """This process's copy of replicated arrays (every leaf of params, metrics)."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0), np.float64), tree)


def close(a, b, what):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6, err_msg=what)


def compare(make, env, cfg, iters):
    # The mesh trainer draws minibatches within each device's envs (shuffle_blocks 0 = one block per
    # device); one device reproduces that with two blocks.
    one = make(env, env.default_params(), dataclasses.replace(cfg, shuffle_blocks=2))
    two = make(env, env.default_params(), cfg, mesh=mesh)
    a, b = one.init(jax.random.PRNGKey(0)), two.init(jax.random.PRNGKey(0))
    obs = b.env_state.obs
    assert obs.shape[0] == cfg.num_envs and not obs.is_fully_addressable
    assert obs.addressable_data(0).shape[0] == cfg.num_envs // 2  # this process steps half the envs
    mine = slice(jax.process_index() * cfg.num_envs // 2, (jax.process_index() + 1) * cfg.num_envs // 2)
    np.testing.assert_array_equal(np.asarray(obs.addressable_data(0)), np.asarray(a.env_state.obs)[mine])
    for i in range(iters):
        a, ma = one.iteration(a)
        b, mb = two.iteration(b)
        close(local(a.actor_params), local(b.actor_params), f"actor after {i + 1}")
        close(local(a.critic_params), local(b.critic_params), f"critic after {i + 1}")
        close(local(ma), local(mb), f"metrics {i + 1}")
    # both processes hold the very same replicated parameters
    flat = np.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(local(b.actor_params))]).astype(np.float32)
    every = dist.allgather(flat.view(np.uint8))
    assert np.array_equal(every[0], every[1]), "the processes' parameters differ"


compare(make_trainer, PointReachEnv(), PPOConfig(num_envs=16, steps_per_iter=8, actor_hidden=(16,),
                                                 critic_hidden=(16,), action_std=0.2, **ADAM), 3)
compare(make_amp_trainer, AMPPointEnv(), AMPConfig(num_envs=16, steps_per_iter=8, actor_hidden=(16,),
                                                   critic_hidden=(16,), disc_hidden=(16,), disc_buffer_size=256,
                                                   disc_replay_samples=32, action_std=0.2, **ADAM), 2)
# the small collectives the training loop uses
assert dist.agree_max(3 * jax.process_index()) == 3
assert dist.broadcast_text(f"from {jax.process_index()}") == "from 0"
print("OK")
