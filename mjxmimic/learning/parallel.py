"""Data parallelism over several devices (GPUs, TPU cores): the envs are split across a 1-D mesh,
everything else (networks, optimiser and normaliser states, AMP replay buffer) is replicated.

The training iteration stays one jitted function; XLA's partitioner (GSPMD) runs each device's
envs locally and inserts the collectives the updates need (the gradient and normaliser
reductions). Each SGD minibatch takes an equal share from every device's own samples
(``ppo.Minibatches``), so the samples never leave their device; the maths is that of one device
with all the envs and ``agent.shuffle_blocks`` set to the device count.
"""
from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

ENV_AXIS = "envs"


def env_mesh(num_devices: Optional[int] = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` local devices of every process (all of them if
    None), in process order so that each process's envs are one contiguous block. With one
    process (no ``jax.distributed``) these are just this machine's devices."""
    local = jax.local_devices()
    n = len(local) if num_devices is None else num_devices
    if not 1 <= n <= len(local):
        raise ValueError(f"asked for {n} devices; this machine has {len(local)} ({local[0].platform})")
    by_process = {}
    for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
        by_process.setdefault(d.process_index, []).append(d)
    return Mesh(np.array([d for p in sorted(by_process) for d in by_process[p][:n]]), (ENV_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree, mesh: Mesh):
    """``tree`` (the same values on every process) replicated on every device of ``mesh``. Through
    the host: a device array of one process cannot be copied to another process's devices."""
    return jax.device_put(jax.device_get(tree), replicated(mesh))


def env_split(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Axis ``axis`` split over the mesh (the env axis, or the minibatch blocks), the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), ENV_AXIS))


def train_state_shardings(abstract_state, mesh: Mesh, num_envs: int):
    """Shardings for a ``TrainState``: its per-env fields (``env_state``, ``ep_return``,
    ``ep_length``) split along their leading env axis, the rest replicated."""
    if num_envs % mesh.size:
        raise ValueError(f"{num_envs} envs do not split evenly over {mesh.size} devices")
    rep, split = replicated(mesh), env_split(mesh)

    def per_env(x):
        return split if x.ndim >= 1 and x.shape[0] == num_envs else rep

    every = jax.tree_util.tree_map(lambda _: rep, abstract_state)
    return every.replace(env_state=jax.tree_util.tree_map(per_env, abstract_state.env_state),
                         ep_return=split, ep_length=split)
