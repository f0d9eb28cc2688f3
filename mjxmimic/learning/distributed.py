"""Several processes (hosts) training one run with ``jax.distributed``.

Every process runs the same command; the envs split over the devices of all of them (the
global mesh of :func:`mjxmimic.learning.parallel.env_mesh`) and the training iteration stays one
jitted program, whose collectives cross processes. Process 0 (:func:`is_primary`) owns the run
directory and the logs; checkpoints are written by all through orbax, which coordinates them.

Where the processes learn of each other (:func:`resolve`), first match wins:

1. explicit arguments (train's ``--coordinator HOST:PORT --num-processes N --process-id I``);
2. the environment variables ``MJXMIMIC_COORDINATOR``, ``MJXMIMIC_NUM_PROCESSES``,
   ``MJXMIMIC_PROCESS_ID``;
3. SLURM: a step started by ``srun`` with more than one task (``SLURM_STEP_NUM_TASKS`` > 1);
   JAX reads the coordinator (first node of the step, a port from the job id), the process
   count and id from SLURM's variables itself. ``SLURM_NTASKS`` alone (a batch script's own
   shell, not started by srun) does not count: one process would wait for absent peers.

Otherwise the run is one process, as without this module.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

import numpy as np

ENV_COORDINATOR = "MJXMIMIC_COORDINATOR"
ENV_NUM_PROCESSES = "MJXMIMIC_NUM_PROCESSES"
ENV_PROCESS_ID = "MJXMIMIC_PROCESS_ID"
SLURM = "slurm"
_TEXT_BYTES = 16384  # broadcast_text's fixed buffer (every process must pass the same shape)


class DistributedError(RuntimeError):
    """The processes' settings are missing, inconsistent, or they could not reach each other."""


def _int(name: str, value) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DistributedError(f"{name}: expected a whole number, got {value!r}") from None


def resolve(coordinator: Optional[str] = None, num_processes=None, process_id=None, environ=None):
    """How this process joins a run: None (one process), ``"slurm"`` (JAX detects SLURM's
    settings), or ``(coordinator, num_processes, process_id)``. Raises DistributedError for
    incomplete or inconsistent settings."""
    environ = os.environ if environ is None else environ
    given = (coordinator, num_processes, process_id)
    names = ("--coordinator", "--num-processes", "--process-id")
    if all(v is None for v in given):
        given = (environ.get(ENV_COORDINATOR) or None, environ.get(ENV_NUM_PROCESSES) or None,
                 environ.get(ENV_PROCESS_ID) or None)
        names = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
    if all(v is None for v in given):
        steps = _int("SLURM_STEP_NUM_TASKS", environ.get("SLURM_STEP_NUM_TASKS"))
        return SLURM if "SLURM_JOB_ID" in environ and steps is not None and steps > 1 else None
    missing = [n for n, v in zip(names, given) if v is None]
    if missing:
        raise DistributedError(f"a multi-process run needs {', '.join(names)}; missing {', '.join(missing)}")
    coord = str(given[0])
    n, i = _int(names[1], given[1]), _int(names[2], given[2])
    host, _, port = coord.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(f"{names[0]}: expected HOST:PORT (process 0's address), got {coord!r}")
    if n < 1:
        raise DistributedError(f"{names[1]}: expected a number >= 1, got {n}")
    if not 0 <= i < n:
        raise DistributedError(f"{names[2]} {i} is not in 0..{n - 1} ({names[1]} {n})")
    return None if n == 1 else (coord, n, i)


def initialize(coordinator: Optional[str] = None, num_processes=None, process_id=None,
               timeout_s: int = 300) -> bool:
    """Join the run that :func:`resolve` describes (``jax.distributed.initialize``); call before
    anything else touches JAX's devices. Returns whether the run has several processes. Waits
    up to ``timeout_s`` for every process to reach the coordinator."""
    how = resolve(coordinator, num_processes, process_id)
    if how is None:
        return False
    import jax
    try:
        if how == SLURM:
            jax.distributed.initialize(cluster_detection_method=SLURM, initialization_timeout=timeout_s)
        else:
            # 'deactivate': inside a SLURM job JAX would otherwise also give this process only the
            # GPU numbered SLURM_LOCALID; explicit flags mean every visible device (one task per node).
            jax.distributed.initialize(*how, initialization_timeout=timeout_s, cluster_detection_method="deactivate")
    except Exception as e:  # JAX raises several types; one line says what was tried
        where = "SLURM's settings" if how == SLURM else f"coordinator {how[0]}, {how[1]} processes, this one {how[2]}"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DistributedError(f"could not start the multi-process run ({where}) within {timeout_s} s: "
                               f"{type(e).__name__}: {first}") from e
    return jax.process_count() > 1


def is_primary() -> bool:
    """Process 0: the one that writes the run directory, logs and prints."""
    import jax
    return jax.process_index() == 0


def allgather(x: np.ndarray) -> np.ndarray:
    """``x`` of every process stacked along a new first axis (process order)."""
    import jax
    if jax.process_count() == 1:
        return np.asarray(x)[None]
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(np.asarray(x)))


def agree_max(value: int) -> int:
    """The largest of every process's ``value`` (0..255): e.g. 'any process wants to stop'. One
    tiny all-gather; call it at the same point on every process."""
    return int(allgather(np.array([min(max(int(value), 0), 255)], np.uint8)).max())


def check_same(settings: dict):
    """Raise DistributedError on every process if the processes were started with different
    ``settings`` (e.g. their command lines) or different local device counts."""
    import jax
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).digest()[:16]
    mine = np.concatenate([np.frombuffer(digest, np.uint8), [min(jax.local_device_count(), 255)]]).astype(np.uint8)
    every = allgather(mine)
    odd = [p for p in range(len(every)) if not np.array_equal(every[p, :16], every[0, :16])]
    if odd:
        raise DistributedError(f"process(es) {', '.join(map(str, odd))} were started with other arguments than "
                               "process 0; start every process with the same command")
    counts = every[:, 16].tolist()
    if len(set(counts)) > 1:
        raise DistributedError(f"the processes have different numbers of local devices ({counts}); "
                               "give every process the same number")


def broadcast_text(text: Optional[str]) -> str:
    """Process 0's ``text`` on every process (others pass anything, e.g. None). Also a barrier:
    nothing after it runs before process 0 got there (e.g. wrote the run directory)."""
    import jax
    if jax.process_count() == 1:
        return text
    from jax.experimental import multihost_utils
    buf = np.zeros(_TEXT_BYTES, np.uint8)
    if is_primary():
        data = (text or "").encode()
        if len(data) > _TEXT_BYTES:
            raise DistributedError(f"broadcast_text: {len(data)} bytes, at most {_TEXT_BYTES}")
        buf[:len(data)] = np.frombuffer(data, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    return bytes(out).rstrip(b"\0").decode()
