"""Several processes (jax.distributed) on this machine's CPU, one device each, gloo collectives:
how a process finds the others, training that follows one process, and the train CLI run as two
processes (process 0 writes the run, SIGTERM to one stops both checkpointed, both resume)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mjxmimic import train
from mjxmimic.learning import distributed as dist

TESTS = Path(__file__).parent
TINY = ["--num-envs", "4", "--set", "agent.steps_per_iter=4", "--set", "agent.actor_hidden=[16]",
        "--set", "agent.critic_hidden=[16]", "--set", "env.episode_length=1.0"]
# What the CLI's multi-process stop and resume are checked on: PPO over K1 playing its walk clip
# kinematically (view_motion: no contacts, no dynamics). The run machinery (sharded envs, agreed
# stops, per-process checkpoints, resume) is the same as for any env, and its training iteration
# compiles in well under half the time of k1_walk's; it is compiled three times here (twice for
# the stop, once more by process 1 on resume: only process 0 writes JAX's compilation cache).
KINEMATIC = {"description": "test: PPO over K1's walk clip played kinematically",
             "env": {"name": "view_motion", "robot": "k1", "motion_file": "motions/k1/walk.npz"},
             "agent": {"name": "ppo"}}


def _free_port(lo=None) -> int:
    """A free port: any (the OS picks), or the first from ``lo`` up."""
    for port in [0] if lo is None else range(lo, 65536):
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MJXMIMIC_"))}
    return {**env, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(train.PACKAGE.parent),
            **{k: str(v) for k, v in extra.items()}}


def _start(cmd, envs):
    return [subprocess.Popen(cmd(i), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=envs[i])
            for i in range(2)]


def _finish(procs, timeout=300):
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    return outs


def test_resolve_reads_flags_then_environment_then_slurm():
    env = {dist.ENV_COORDINATOR: "h:1", dist.ENV_NUM_PROCESSES: "4", dist.ENV_PROCESS_ID: "3"}
    assert dist.resolve(environ={}) is None
    assert dist.resolve("host:1234", 2, 1, environ=env) == ("host:1234", 2, 1)  # flags win
    assert dist.resolve(environ=env) == ("h:1", 4, 3)
    assert dist.resolve("h:1", 1, 0, environ={}) is None  # one process: nothing to join
    slurm = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2"}
    assert dist.resolve(environ={**slurm, "SLURM_STEP_NUM_TASKS": "2"}) == dist.SLURM
    assert dist.resolve(environ=slurm) is None  # a batch script's shell, not an srun step
    assert dist.resolve(environ={**slurm, "SLURM_STEP_NUM_TASKS": "1"}) is None
    for args, words in ((("h:1", 2, None), "missing --process-id"), (("h:1", 2, 2), "--process-id 2 is not in 0..1"),
                        (("h", 2, 0), "HOST:PORT"), (("h:1", "two", 0), "whole number")):
        with pytest.raises(dist.DistributedError, match=words):
            dist.resolve(*args, environ={})
    with pytest.raises(dist.DistributedError, match=f"missing {dist.ENV_PROCESS_ID}"):
        dist.resolve(environ={dist.ENV_COORDINATOR: "h:1", dist.ENV_NUM_PROCESSES: "2"})


def test_help_names_the_flags(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = capsys.readouterr().out
    for word in ("--coordinator HOST:PORT", "--num-processes N", "--process-id I", "--distributed {auto,off}",
                 dist.ENV_COORDINATOR, dist.ENV_NUM_PROCESSES, dist.ENV_PROCESS_ID, "SLURM"):
        assert word in out, word


def test_two_processes_train_like_one():
    port = _free_port()
    procs = _start(lambda i: [sys.executable, str(TESTS / "distributed_check.py"), f"localhost:{port}", str(i)],
                   [_env(), _env()])
    outs = _finish(procs)
    for p, out in zip(procs, outs):
        assert p.returncode == 0 and out.strip().endswith("OK"), out[-3000:]


def test_cli_refuses_processes_started_differently(tmp_path):
    """Each bad start ends every process with one error line from process 0, and writes nothing."""
    for extra, words in (([["--seed", "0"], ["--seed", "1"]], "other arguments than process 0"),
                         ([["--num-envs", "3"]] * 2, "3 envs do not split evenly over 2 devices (2 processes x 1)")):
        port = _free_port()
        out_dir = tmp_path / f"run{port}"
        procs = _start(lambda i: [sys.executable, "-m", "mjxmimic.train", "--env", "k1_walk", "--iterations", "1",
                                  "--out", str(out_dir), "--coordinator", f"localhost:{port}", "--num-processes", "2",
                                  "--process-id", str(i), *extra[i]], [_env(), _env()])
        outs = _finish(procs, timeout=240)
        assert [p.returncode for p in procs] == [2, 2], outs
        errors = [[ln for ln in out.splitlines() if ln.startswith("error:")] for out in outs]
        assert len(errors[0]) == 1 and words in errors[0][0] and errors[1] == [], outs
        assert not out_dir.exists()


@pytest.mark.slow
def test_cli_two_processes_stop_together_and_resume(tmp_path):
    """Two processes train one run: process 0 alone logs; SIGTERM to process 1 stops both after the
    same iteration, checkpointed; both resume (found through SLURM's variables) and finish it."""
    d = tmp_path / "run"
    cfg = tmp_path / "kinematic.yaml"
    cfg.write_text(yaml.safe_dump(KINEMATIC))
    port = _free_port()
    procs = _start(lambda i: [sys.executable, "-m", "mjxmimic.train", "--env", str(cfg), *TINY, "--iterations",
                              "100000", "--save-every", "100000", "--out", str(d), "--coordinator",
                              f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)], [_env(), _env()])
    jsonl = d / "metrics.jsonl"
    deadline = time.time() + 400
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2:
            break
        time.sleep(0.5)
    assert all(p.poll() is None for p in procs), _finish(procs, 60)
    procs[1].send_signal(signal.SIGTERM)
    outs = _finish(procs, timeout=180)
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outs]
    assert "interrupted; last completed iteration checkpointed" in outs[0] and f"run dir {d}" in outs[0]
    assert "run dir" not in outs[1] and "done:" not in outs[1]  # process 1 prints nothing of its own
    logged = [json.loads(x)["iteration"] for x in jsonl.read_text().splitlines()]
    k = len(logged)
    assert logged == list(range(1, k + 1)) and k >= 2  # one writer: no line twice
    assert sorted(int(x.name) for x in (d / "checkpoints").iterdir() if x.name.isdigit()) == [k]

    # Resume both through SLURM's variables (as `srun --ntasks 2` sets them): JAX picks the
    # coordinator port from the job id, in 61440..65535.
    port = _free_port(61440)
    slurm = {"SLURM_JOB_ID": port - 61440, "SLURM_STEP_NODELIST": "localhost", "SLURM_NTASKS": 2,
             "SLURM_STEP_NUM_TASKS": 2}
    procs = _start(lambda i: [sys.executable, "-m", "mjxmimic.train", "--resume", str(d), "--iterations", str(k + 1)],
                   [_env(**slurm, SLURM_PROCID=i, SLURM_LOCALID=i) for i in range(2)])
    outs = _finish(procs)
    assert [p.returncode for p in procs] == [0, 0], [o[-2000:] for o in outs]
    assert f"resumed from iteration {k}" in outs[0] and "2 processes x 1" in outs[0]
    logged = [json.loads(x)["iteration"] for x in jsonl.read_text().splitlines()]
    assert logged == list(range(1, k + 2))
    assert max(int(x.name) for x in (d / "checkpoints").iterdir() if x.name.isdigit()) == k + 1
