"""Save/restore the ``TrainState`` with orbax, plus a training loop that uses it.

Two kinds of checkpoint:

* **exact** (``Checkpointer(..., exact=True)``): every leaf of the TrainState (params,
  optimiser moments, normalisers, vmapped env states, AMP replay buffer, PRNG key, counters),
  so restoring step k and running on is bitwise identical to never having stopped (same
  device/backend).
* **light** (the default): nodes of the state that can be rebuilt from fresh experience
  define ``checkpoint_light()`` (the AMP replay buffer: hundreds of MB) and are stored
  empty. A light resume starts with an empty replay buffer that refills from the first
  iterations after the resume (all T·N agent samples per iteration until full), so the
  discriminator replays different samples than an uninterrupted run would: the resumed run
  is statistically equivalent, not bitwise identical. Everything else is restored exactly.

``restore`` reads either kind (which one a checkpoint is, is read from its saved keys).
Optionally a ``best`` checkpoint is kept beside the last ``max_to_keep``, chosen by a metric.
In a multi-process run every process calls the same saves and restores with the same steps;
orbax writes each process's shards and lets process 0 finalise the checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, empty, corrupt, or does not fit the TrainState."""


def light_state(tree):
    """``tree`` with every node that has ``checkpoint_light()`` replaced by its light form
    (rebuildable bulk emptied to zero-size arrays, which are not saved)."""
    light = lambda x: hasattr(x, "checkpoint_light")  # noqa: E731
    return jax.tree_util.tree_map(lambda x: x.checkpoint_light() if light(x) else x, tree, is_leaf=light)


def saved_nbytes(tree, exact: bool = False) -> int:
    """Bytes of array data a checkpoint of ``tree`` (arrays or ShapeDtypeStructs) holds, before
    compression."""
    leaves = jax.tree_util.tree_leaves(tree if exact else light_state(tree))
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in leaves)


BEST_DIR = "best"


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of a run in ``directory``, named by the
    TrainState's iteration count. ``maybe_save`` saves every ``save_every`` iterations.

    ``exact``: store everything (bitwise resume) instead of light checkpoints.
    ``best_metric``: also keep the checkpoint with the highest mean of this metric over the
    iterations since the previous save, in ``directory/best`` (metrics named ``episode_*`` are
    weighted by the iteration's ``num_episodes``, so iterations where no episode ended do not
    count). Its step and score are in ``directory/best/best.json``.
    """

    def __init__(self, directory: str, save_every: int = 100, max_to_keep: int = 2, create: bool = True,
                 exact: bool = False, best_metric: Optional[str] = None):
        self.directory = os.path.abspath(os.fspath(directory))
        if not create and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory!r} does not exist")
        self.save_every = int(save_every)
        self.exact = bool(exact)
        self.best_metric = best_metric
        self._mgr = _manager(self.directory, max_to_keep, create)
        self._best_mgr = None
        self._window = [0.0, 0.0]  # weighted sum, weight of best_metric since the last save
        self.best_value = -math.inf
        if best_metric is not None:
            self._best_mgr = _manager(os.path.join(self.directory, BEST_DIR), 1, create)
            info = self.best_info()
            if info is not None and info.get("metric") == best_metric:
                self.best_value = float(info["value"])

    def steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._mgr.latest_step()

    def best_info(self) -> Optional[dict]:
        p = os.path.join(self.directory, BEST_DIR, "best.json")
        return json.loads(open(p).read()) if os.path.exists(p) else None

    def save(self, train_state, step: Optional[int] = None) -> bool:
        """Save now (no-op if this step is already saved). Returns whether it saved."""
        step = int(train_state.iteration) if step is None else int(step)
        self._save_best(train_state, step)
        if step in self._mgr.all_steps():
            return False
        return bool(self._mgr.save(step, args=ocp.args.StandardSave(self._payload(train_state)), force=True))

    def maybe_save(self, train_state, step: int, metrics=None) -> bool:
        """Save if ``step`` (the iteration count, passed to avoid a device sync) is due.
        ``metrics``: this iteration's, for the best checkpoint (fetched only if one is kept)."""
        if self.best_metric is not None and metrics is not None and self.best_metric in metrics:
            v = float(metrics[self.best_metric])
            w = float(metrics.get("num_episodes", 1.0)) if self.best_metric.startswith("episode_") else 1.0
            if math.isfinite(v) and w > 0:
                self._window[0] += w * v
                self._window[1] += w
        if self.save_every > 0 and step % self.save_every == 0:
            return self.save(train_state, step)
        return False

    def _payload(self, train_state) -> dict:
        return _nonempty(train_state if self.exact else light_state(train_state))

    def _save_best(self, train_state, step: int):
        total, weight = self._window
        self._window = [0.0, 0.0]
        if self._best_mgr is None or weight <= 0 or total / weight <= self.best_value:
            return
        self.best_value = total / weight
        self._best_mgr.save(step, args=ocp.args.StandardSave(self._payload(train_state)), force=True)
        self._best_mgr.wait_until_finished()
        if jax.process_index() == 0:  # several processes: every one saves (orbax), one writes the json
            with open(os.path.join(self.directory, BEST_DIR, "best.json"), "w") as f:
                json.dump({"step": step, "metric": self.best_metric, "value": self.best_value}, f)

    def restore(self, template, step: Optional[int] = None, best: bool = False):
        """Restore into the structure of ``template`` (a TrainState or ``trainer.abstract_state()``);
        ``step=None`` takes the latest (``best=True``: the best checkpoint). Every leaf comes back
        on the template's sharding (default device where it has none), so the jitted iteration
        sees the same placement for every leaf."""
        mgr = self._mgr
        if best:
            mgr = self._best_mgr or _manager(os.path.join(self.directory, BEST_DIR), 1, False)
        steps = list(mgr.all_steps())
        if not steps:
            raise CheckpointError(f"no checkpoints found in {mgr.directory!s}")
        step = max(steps) if step is None else int(step)
        if step not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {self.directory!r}; have {steps}")
        try:
            return _restore(mgr, step, template)
        except Exception as e:  # orbax raises many types for truncated/mismatched files
            raise CheckpointError(
                f"checkpoint {step} in {self.directory!r} is corrupt or does not match this "
                f"TrainState (different config/env?): {type(e).__name__}: {e}") from e

    def wait(self):
        self._mgr.wait_until_finished()

    def close(self):
        for m in (self._mgr, self._best_mgr):
            if m is not None:
                m.wait_until_finished()
                m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _manager(directory: str, max_to_keep: int, create: bool):
    return ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler(),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create))


def _nonempty(tree) -> dict:
    # Orbax refuses zero-size arrays (MJX data has several, e.g. `act` for a model without
    # actuator states; light checkpoints empty the rebuildable bulk): save the non-empty
    # leaves by their flat index; restore rebuilds the empty ones from the template's shapes.
    leaves = jax.tree_util.tree_leaves(tree)
    return {str(i): x for i, x in enumerate(leaves) if x.size}


def _with_sharding(x):
    sh = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh)


def _restore(mgr, step: int, template):
    abstract = jax.tree_util.tree_map(_with_sharding, template)
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    light_leaves = jax.tree_util.tree_leaves(light_state(abstract))
    full = {str(i) for i, x in enumerate(leaves) if x.size}
    light = {str(i) for i, x in enumerate(light_leaves) if np.prod(x.shape)}
    have = set(mgr.item_metadata(step).keys())
    if have not in (full, light):
        raise ValueError(f"its arrays are not this TrainState's ({len(have)} saved; this TrainState has "
                         f"{len(full)}, {len(light)} in a light checkpoint, at other places in its tree)")
    saved = mgr.restore(step, args=ocp.args.StandardRestore({k: leaves[int(k)] for k in have}))
    # Missing leaves: zero-size ones, and the bulk a light checkpoint leaves out (its light form
    # also saved the counters that mark it empty, e.g. the replay buffer's count).
    out = [saved[str(i)] if str(i) in saved else jax.device_put(np.zeros(x.shape, x.dtype), x.sharding)
           for i, x in enumerate(leaves)]
    return jax.tree_util.tree_unflatten(treedef, out)


def restore_train_state(directory: str, template, step: Optional[int] = None, best: bool = False):
    """One-shot restore; raises ``CheckpointError`` for a missing/empty/corrupt directory."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint directory {os.path.abspath(directory)!r} does not exist")
    if best and not os.path.isdir(os.path.join(directory, BEST_DIR)):
        raise CheckpointError(f"{os.path.abspath(directory)!r} has no best checkpoint (train with --keep-best)")
    with Checkpointer(directory, create=False) as ck:
        return ck.restore(template, step, best=best)


def init_or_restore(trainer, key, checkpointer: Optional[Checkpointer] = None):
    """Latest checkpoint if ``checkpointer`` has one, else ``trainer.init(key)``."""
    if checkpointer is not None and checkpointer.latest_step() is not None:
        return trainer.place(checkpointer.restore(trainer.abstract_state()))
    return trainer.init(key)


def train(trainer, train_state, num_iterations: int, checkpointer: Optional[Checkpointer] = None,
          log_fn: Optional[Callable[[int, Any], None]] = None,
          evaluate_fn: Optional[Callable[[Any], dict]] = None, eval_every: int = 0):
    """Run ``trainer.iteration`` until ``train_state.iteration == num_iterations``.

    Saves every ``checkpointer.save_every`` iterations and, on any exit (normal end,
    exception, Ctrl-C), the last *completed* state. ``log_fn(iteration, metrics)`` gets
    device arrays; fetching them is its choice (that is the only host sync besides saves
    and, when a best checkpoint is kept, its metric).
    ``evaluate_fn(train_state) -> dict``, when given, runs after every ``eval_every``-th
    iteration; its values join that iteration's metrics as ``eval/<key>`` (before logging and
    saving, so a best checkpoint chosen by an ``eval/`` metric is the evaluated state).
    Not safe with ``donate=True`` trainers on Ctrl-C (the last state may be donated).
    """
    it = int(train_state.iteration)
    try:
        while it < num_iterations:
            train_state, metrics = trainer.iteration(train_state)
            it += 1
            if evaluate_fn is not None and eval_every > 0 and it % eval_every == 0:
                metrics = {**metrics, **{f"eval/{k}": v for k, v in evaluate_fn(train_state).items()}}
            if log_fn is not None:
                log_fn(it, metrics)
            if checkpointer is not None:
                checkpointer.maybe_save(train_state, it, metrics)
    except KeyboardInterrupt:
        print(f"interrupted at iteration {it}; saving checkpoint", file=sys.stderr)
        raise
    finally:
        if checkpointer is not None:
            checkpointer.save(train_state, it)
            checkpointer.wait()
    return train_state
