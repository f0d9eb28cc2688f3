"""The cluster/ SLURM scripts on a real SLURM: a tiny CPU run submitted with cluster/train.sbatch,
its time-limit warning (SIGUSR1 to the batch script, as #SBATCH --signal=B:USR1@300 sends it),
the requeue and the resume from the checkpoint, then scancel; and the distributed flags
cluster/train_multinode.sbatch derives for each task.

They need a SLURM controller that answers (`sudo cluster/local_slurm.sh start` makes a one-node
cluster on this machine; .ci/run does) and skip, saying so, without one."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mjxmimic.paths import REPO_ROOT

CLUSTER = REPO_ROOT / "cluster"
TINY = ["--env", "k1_walk", "--num-envs", "4", "--set", "agent.steps_per_iter=4", "--set", "agent.actor_hidden=[16]",
        "--set", "agent.critic_hidden=[16]", "--set", "env.episode_length=1.0"]
# The scripts' GPU, CPU and memory requests are Euler's; the local node has neither GPUs nor 8 CPUs.
CPU_JOB = ["--gpus=0", "--cpus-per-task=1", "--mem-per-cpu=500M"]

LOCAL_CLUSTER = "mjxmimic-local"  # the ClusterName cluster/local_slurm.sh writes: jobs go to no real cluster

pytestmark = pytest.mark.slow


def _slurm_reason():
    if not (REPO_ROOT / "cluster").is_dir():
        return "no cluster/ folder (an installed package)"
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (sbatch not on PATH): sudo cluster/local_slurm.sh start installs and starts one"
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"no SLURM controller answers ({r.stderr.strip()}): sudo cluster/local_slurm.sh start"
    states = r.stdout.split()
    r = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    cluster = dict(re.findall(r"^(\w+)\s*=\s*(\S*)", r.stdout, re.M)).get("ClusterName")
    if cluster != LOCAL_CLUSTER and os.environ.get("MJXMIMIC_TEST_SLURM") != "1":
        return (f"the SLURM cluster here is '{cluster}', not {LOCAL_CLUSTER} from cluster/local_slurm.sh: "
                "MJXMIMIC_TEST_SLURM=1 submits the test jobs to it anyway")
    if not {"idle", "mix"} & set(states):
        return f"no idle SLURM node (sinfo: {states})"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_reason()
    if reason:
        pytest.skip(reason)


def _job_env(tmp_path, **extra):
    env = {**os.environ, "SCRATCH": str(tmp_path), "MJXMIMIC_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("MJXMIMIC_RUN_DIR", None)
    env.update(extra)
    return env


def _sbatch(script, name, out, env, *args, opts=()):
    """Submit cluster/<script> with sbatch options ``opts`` and the training arguments ``args``."""
    r = subprocess.run(["sbatch", "--parsable", *CPU_JOB, *opts, f"--job-name={name}", f"--output={out}",
                        f"--chdir={REPO_ROOT}", str(CLUSTER / script), *args],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def _job(job_id) -> dict:
    r = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", r.stdout))


def _wait(what, check, timeout, out: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = check()
        if v:
            return v
        time.sleep(0.5)
    log = out.read_text()[-3000:] if out.exists() else "(no job output)"
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; job output:\n{log}")


def _iterations(run_dir: Path) -> list:
    p = run_dir / "metrics.jsonl"
    return [json.loads(x)["iteration"] for x in p.read_text().splitlines()] if p.exists() else []


def _steps(run_dir: Path) -> list:
    d = run_dir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_train_sbatch_checkpoints_requeues_and_resumes(slurm, tmp_path):
    """Submitted as on a cluster: the run dir is $SCRATCH/mjxmimic/runs/<job name>-<job id>; SIGUSR1
    checkpoints and requeues the job; its second start resumes in the same dir from the saved
    iteration (the metrics continue from it, not from 1); scancel checkpoints and ends it."""
    out = tmp_path / "job.out"
    job = _sbatch("train.sbatch", "mjx-test", out, _job_env(tmp_path), *TINY, "--iterations", "100000",
                  "--save-every", "100000")
    run_dir = tmp_path / "mjxmimic" / "runs" / f"mjx-test-{job}"
    try:
        _wait("3 logged iterations", lambda: len(_iterations(run_dir)) >= 3, 240, out)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
        _wait("the requeue", lambda: _job(job).get("Restarts") == "1", 120, out)
        saved = _steps(run_dir)[-1]
        logged = _iterations(run_dir)
        assert saved >= 3 and saved in (logged[-1], logged[-1] + 1), (saved, logged)  # not the save-every schedule
        # The second start: a resume of the same run from its checkpoint, and it trains on.
        _wait("the resumed run to log 3 iterations", lambda: max(_iterations(run_dir)) >= saved + 3, 180, out)
        text = out.read_text()
        assert f"{run_dir} holds a run; resuming it" in text and f"resumed from iteration {saved}" in text, text[-3000:]
        its = _iterations(run_dir)
        assert its == sorted(set(its)) and its[:len(logged)] == logged and its[len(logged)] == saved + 1, its
        subprocess.run(["scancel", job], check=True, timeout=30)
        _wait("the job to end", lambda: _job(job).get("JobState") in ("CANCELLED", "COMPLETED", "FAILED"), 120, out)
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    info = _job(job)
    assert info["JobState"] == "CANCELLED" and info["Restarts"] == "1", info  # scancel: no further requeue
    text = out.read_text()
    assert "SIGTERM: checkpointing and stopping" in text, text[-3000:]
    assert "last completed iteration checkpointed" in text, text[-3000:]
    assert _steps(run_dir)[-1] >= max(_iterations(run_dir)) >= saved + 3


def test_multinode_sbatch_gives_each_task_its_distributed_flags(slurm, tmp_path):
    """Two tasks: each runs training with --coordinator <first node>:<port> --num-processes 2 and its
    own --process-id; SIGUSR1 to the job script reaches both (through srun) and the job requeues.
    A stand-in interpreter records its arguments and signals instead of training."""
    stub = tmp_path / "stub.sh"
    stub.write_text('#!/bin/bash\n'
                    'log="$SCRATCH/task.$SLURM_PROCID"\n'
                    'trap \'echo usr1 >> "$log"; exit 0\' USR1\n'
                    'echo "start $*" >> "$log"\n'
                    '[ "${SLURM_RESTART_COUNT:-0}" = 0 ] || exit 0\n'
                    'for _ in $(seq 1200); do sleep 0.1; done\n')
    out = tmp_path / "job.out"
    env = _job_env(tmp_path, MJXMIMIC_PYTHON=f"bash {stub}", MJXMIMIC_PORT="23456")
    job = _sbatch("train_multinode.sbatch", "mjx-mn", out, env, *TINY, "--devices", "all",
                  opts=["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0"])
    logs = [tmp_path / f"task.{rank}" for rank in (0, 1)]
    try:
        _wait("both tasks to start", lambda: all(p.exists() for p in logs), 60, out)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
        _wait("the requeued job to end", lambda: _job(job).get("JobState") == "COMPLETED", 90, out)
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    assert _job(job)["Restarts"] == "1"
    head = subprocess.run(["scontrol", "show", "hostnames", _job(job)["NodeList"]], capture_output=True, text=True,
                          timeout=30).stdout.split()[0]
    run_dir = tmp_path / "mjxmimic" / "runs" / f"mjx-mn-{job}"
    for rank, log in enumerate(logs):
        lines = log.read_text().splitlines()
        assert [x.split()[0] for x in lines] == ["start", "usr1", "start"], lines  # signalled, then restarted
        words = lines[0].split()[1:]
        assert words[:2] == ["-m", "mjxmimic.train"], words
        flags = dict(zip(words[2::2], words[3::2]))  # every argument here is a flag and its value
        assert flags["--out"] == str(run_dir) and flags["--env"] == "k1_walk" and flags["--devices"] == "all"
        assert flags["--coordinator"] == f"{head}:23456" and flags["--num-processes"] == "2"
        assert flags["--process-id"] == str(rank)
