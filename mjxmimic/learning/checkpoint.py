"""Save/restore the whole ``TrainState`` with orbax, plus a training loop that uses it.

The TrainState holds every bit of learner state (params, optimiser moments, normalisers,
vmapped env states, AMP replay buffer, the PRNG key, counters), so restoring step k and
running on is bitwise identical to never having stopped (same device/backend).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, empty, corrupt, or does not fit the TrainState."""


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of a run in ``directory``, named by the
    TrainState's iteration count. ``maybe_save`` saves every ``save_every`` iterations."""

    def __init__(self, directory: str, save_every: int = 100, max_to_keep: int = 3, create: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory!r} does not exist")
        self.save_every = int(save_every)
        self._mgr = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create))

    def steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._mgr.latest_step()

    def save(self, train_state, step: Optional[int] = None) -> bool:
        """Save now (no-op if this step is already saved). Returns whether it saved."""
        step = int(train_state.iteration) if step is None else int(step)
        if step in self._mgr.all_steps():
            return False
        return bool(self._mgr.save(step, args=ocp.args.StandardSave(_nonempty(train_state)), force=True))

    def maybe_save(self, train_state, step: int) -> bool:
        """Save if ``step`` (the iteration count, passed to avoid a device sync) is due."""
        if self.save_every > 0 and step % self.save_every == 0:
            return self.save(train_state, step)
        return False

    def restore(self, template, step: Optional[int] = None):
        """Restore into the structure of ``template`` (a TrainState or ``trainer.abstract_state()``);
        ``step=None`` takes the latest."""
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoints found in {self.directory!r}")
        step = max(steps) if step is None else int(step)
        if step not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory!r}; have {steps}")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
        try:
            saved = self._mgr.restore(step, args=ocp.args.StandardRestore(_nonempty(abstract)))
            return _fill(abstract, saved)
        except Exception as e:  # orbax raises many types for truncated/mismatched files
            raise CheckpointError(
                f"checkpoint {step} in {self.directory!r} is corrupt or does not match this "
                f"TrainState (different config/env?): {type(e).__name__}: {e}") from e

    def wait(self):
        self._mgr.wait_until_finished()

    def close(self):
        self._mgr.wait_until_finished()
        self._mgr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _nonempty(tree) -> dict:
    # Orbax refuses zero-size arrays (MJX data has several, e.g. `act` for a model without
    # actuator states): save the non-empty leaves by their flat index; restore rebuilds the
    # empty ones from the template's shapes.
    leaves = jax.tree_util.tree_leaves(tree)
    return {str(i): x for i, x in enumerate(leaves) if x.size}


def _fill(abstract, saved: dict):
    import jax.numpy as jnp
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    out = [saved[str(i)] if str(i) in saved else jnp.zeros(x.shape, x.dtype) for i, x in enumerate(leaves)]
    if len(saved) != sum(1 for x in leaves if x.size):
        raise ValueError("number of saved arrays differs from the TrainState's")
    return jax.tree_util.tree_unflatten(treedef, out)


def restore_train_state(directory: str, template, step: Optional[int] = None):
    """One-shot restore; raises ``CheckpointError`` for a missing/empty/corrupt directory."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {os.path.abspath(directory)!r} does not exist")
    with Checkpointer(directory, create=False) as ck:
        return ck.restore(template, step)


def init_or_restore(trainer, key, checkpointer: Optional[Checkpointer] = None):
    """Latest checkpoint if ``checkpointer`` has one, else ``trainer.init(key)``."""
    if checkpointer is not None and checkpointer.latest_step() is not None:
        return trainer.place(checkpointer.restore(trainer.abstract_state()))
    return trainer.init(key)


def train(trainer, train_state, num_iterations: int, checkpointer: Optional[Checkpointer] = None,
          log_fn: Optional[Callable[[int, Any], None]] = None):
    """Run ``trainer.iteration`` until ``train_state.iteration == num_iterations``.

    Saves every ``checkpointer.save_every`` iterations and, on any exit (normal end,
    exception, Ctrl-C), the last *completed* state. ``log_fn(iteration, metrics)`` gets
    device arrays; fetching them is its choice (that is the only host sync besides saves).
    Not safe with ``donate=True`` trainers on Ctrl-C (the last state may be donated).
    """
    it = int(train_state.iteration)
    try:
        while it < num_iterations:
            train_state, metrics = trainer.iteration(train_state)
            it += 1
            if log_fn is not None:
                log_fn(it, metrics)
            if checkpointer is not None:
                checkpointer.maybe_save(train_state, it)
    except KeyboardInterrupt:
        print(f"interrupted at iteration {it}; saving checkpoint", file=sys.stderr)
        raise
    finally:
        if checkpointer is not None:
            checkpointer.save(train_state, it)
            checkpointer.wait()
    return train_state
