"""Train a named env+agent config:

    python -m mjxmimic.train --env k1_kick
    python -m mjxmimic.train --env k1_walk --num-envs 1024 --set agent.actor_lr=5e-5 --minutes 10
    python -m mjxmimic.train --resume runs/k1_walk-20261126-2300     # continue a run

A run directory holds the resolved config (config.yaml), run.yaml (seed, budget, checkpoint
mode), fingerprint.json (hashes of the config and of the code and assets it trains with),
TensorBoard scalars (tb/), metrics.jsonl (one line per iteration) and orbax checkpoints
(checkpoints/, the last --keep; with --keep-best also checkpoints/best/), saved every
--save-every iterations and at exit, Ctrl-C, SIGTERM or SIGUSR1 (a cluster scheduler's stop or
warning; cluster/ has SLURM scripts that requeue and resume).
--out never reuses a directory that holds a run: continue one with --resume DIR, which
refuses when the config or the code changed since the run began (--force to resume anyway;
fingerprint.json records it).

Checkpoints leave out the AMP replay buffer (hundreds of MB); a resumed run refills it from
its first iterations, so it is statistically, not bitwise, the run it continues.
--exact-resume stores everything: resuming is then bitwise identical to never stopping.

Without --iterations or --minutes a run stops after 10 minutes on a CPU and after 30 minutes
on a GPU/TPU. Each training iteration (rollout, returns, all PPO/AMP updates) is one jitted
call; this loop only logs and checkpoints.

Several GPUs: --devices N|all splits the envs over this machine's devices. Several processes
or hosts (jax.distributed): start the same command once per process, with
    --coordinator HOST:PORT --num-processes N --process-id I      (I = 0..N-1; HOST: process 0's)
or the same three in MJXMIMIC_COORDINATOR, MJXMIMIC_NUM_PROCESSES, MJXMIMIC_PROCESS_ID; under
SLURM, `srun` with more than one task is detected by itself, one task per GPU (JAX gives each
the GPU numbered SLURM_LOCALID); --distributed off keeps a command to one process.
The envs (--num-envs: the total over all processes) split over every device of every process
(--devices: per process, default all of them); process 0 writes the run directory, logs and
prints, every process writes its share of the checkpoints (the run directory must be on a
filesystem all hosts share). SIGTERM to any process stops all of them after the same iteration,
checkpointed; --resume DIR continues it with the same processes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

from mjxmimic.quiet import import_mjx

import_mjx()  # before the registry imports MJX: no warp-probe lines

from mjxmimic.envs import registry  # noqa: E402
from mjxmimic.envs.registry import (ConfigError, apply_overrides, load_config, make_env,  # noqa: E402
                                    parse_overrides, read_config)
from mjxmimic.learning import distributed as dist  # noqa: E402
from mjxmimic.paths import ROBOTS_DIR, default_runs_dir, enable_compile_cache  # noqa: E402

CPU_NUM_ENVS = 64
CPU_MINUTES = 10.0  # default budget without a GPU: the quick start ends by itself
ACCEL_MINUTES = 30.0  # default budget on a GPU/TPU (k1_kick reaches 83% success in 6 min on an H100)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # checkpoint the last completed iteration and exit
RUN_FILES = ("config.yaml", "run.yaml", "fingerprint.json", "metrics.jsonl", "checkpoints")
PACKAGE = Path(__file__).resolve().parent
# Source that decides what a training run computes (the CLIs and tools around it do not).
TRAINING_CODE = ("envs", "learning", "robots", "motions", "math.py")

# Metrics shown on the progress bar (when the run has them), and of each --eval-every evaluation.
_EVAL_SHOWN = ("episodes", "episode_return", "episode_length", "full_length", "end/success", "end/fall")
_BAR = (("episode_return", "ret"), ("episode_length", "len"), ("episode_success_rate", "succ"),
        ("episode_fail_rate", "fail"),
        ("env/joint_pos_err", "jerr"), ("env/key_pos_err", "kerr"), ("disc_agent_acc", "dacc"))


# --------------------------------------------------------------------------- fingerprint
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _asset_files(raw: dict) -> list[Path]:
    """The robot and motion files a resolved config trains on (dataset YAMLs with their folder)."""
    env = raw.get("env", {})
    files = []
    robot_dir = ROBOTS_DIR / str(env.get("robot", ""))
    if env.get("robot") and robot_dir.is_dir():
        files += [p for p in robot_dir.rglob("*") if p.is_file()]
    motions = [env["motion_file"]] if env.get("motion_file") else list(env.get("motion_files") or [])
    for m in motions:
        try:
            p = registry.resolve_path(str(m), None)
        except ConfigError:
            continue  # load_config reports it
        if p.suffix in (".yaml", ".yml"):  # a dataset lists clips, relative to its folder
            files += [q for q in p.parent.rglob("*") if q.is_file()]
        elif p.is_file():
            files.append(p)
    return files


def fingerprint(config_text: str) -> dict:
    """Hashes that decide whether a run can be continued: the resolved config (config.yaml's
    text), the package version, and every training source file and asset the config reads."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ver = version("mjxmimic")
    except PackageNotFoundError:
        ver = "unknown"
    files = [p for name in TRAINING_CODE for p in
             ((PACKAGE / name).rglob("*.py") if (PACKAGE / name).is_dir() else [PACKAGE / name])]
    files += _asset_files(yaml.safe_load(config_text) or {})
    code = {}
    for p in sorted(set(files)):
        rel = p.relative_to(PACKAGE.parent) if p.is_relative_to(PACKAGE.parent) else p
        code[str(rel)] = _sha(p.read_bytes())
    return {"config_sha256": _sha(config_text.encode()), "version": ver,
            "code_sha256": _sha(json.dumps(code, sort_keys=True).encode()), "files": code}


def fingerprint_differences(saved: dict, now: dict) -> list[str]:
    """What changed between two fingerprints, in words (empty: nothing)."""
    out = []
    if saved.get("config_sha256") != now["config_sha256"]:
        out.append("config: config.yaml was edited since the run began")
    if saved.get("version") != now["version"]:
        out.append(f"code: mjxmimic version {saved.get('version')} -> {now['version']}")
    if saved.get("code_sha256") != now["code_sha256"]:
        old, new = saved.get("files", {}), now["files"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        out.append(f"code: {', '.join(changed[:3])}{more} changed")
    return out


def _check_fingerprint(run_dir: Path, force: bool):
    """Refuse (ConfigError) to resume a run whose config or code changed, unless ``force``;
    a forced resume is recorded in fingerprint.json."""
    p = run_dir / "fingerprint.json"
    now = fingerprint((run_dir / "config.yaml").read_text())
    saved = json.loads(p.read_text()) if p.exists() else None
    diffs = ["no fingerprint.json (a run from an older mjxmimic)"] if saved is None else \
        fingerprint_differences(saved, now)
    if not diffs:
        return
    if not force:
        raise ConfigError(f"--resume {run_dir}: it differs from when the run began ({'; '.join(diffs)}); "
                          "start a new run, or add --force to resume anyway")
    print(f"warning: resuming despite: {'; '.join(diffs)} (--force; recorded in {p.name})", file=sys.stderr)
    rec = saved or dict(now)
    rec.setdefault("forced_resumes", []).append(
        {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "differences": diffs,
         "config_sha256": now["config_sha256"], "version": now["version"], "code_sha256": now["code_sha256"]})
    p.write_text(json.dumps(rec, indent=1))


def _resolved_config(env_name: str, overrides: dict) -> dict:
    """The config file's mapping, its defaults merged in (self-contained), with overrides applied
    (validated by load_config)."""
    c = load_config(env_name, overrides)
    return apply_overrides(read_config(c["path"]), overrides)


def build_trainer(env, params, agent_cfg, mesh=None):
    from mjxmimic.learning import (ADDConfig, AMPConfig, ASEConfig, make_add_trainer, make_amp_trainer,
                                   make_ase_trainer, make_trainer)
    if isinstance(agent_cfg, ADDConfig):   # before AMP: ADDConfig and ASEConfig are AMPConfigs
        return make_add_trainer(env, params, agent_cfg, mesh=mesh)
    if isinstance(agent_cfg, ASEConfig):
        return make_ase_trainer(env, params, agent_cfg, mesh=mesh)
    if isinstance(agent_cfg, AMPConfig):
        return make_amp_trainer(env, params, agent_cfg, mesh=mesh)
    return make_trainer(env, params, agent_cfg, mesh=mesh)


def _devices(arg: str, multi: bool = False) -> int:
    """--devices: a count of local devices ('all': every one; 'auto': 1, or all in a
    multi-process run)."""
    import jax
    have = len(jax.local_devices())
    if arg == "all" or (arg == "auto" and multi):
        return have
    if arg == "auto":
        return 1
    if not arg.isdigit() or int(arg) < 1:
        raise ConfigError(f"--devices: expected a number >= 1, 'all' or 'auto', got {arg!r}")
    if int(arg) > have:
        raise ConfigError(f"--devices {arg}: this machine has {have} {jax.default_backend()} device(s)")
    return int(arg)


def _check_split(num_envs: int, devices: int):
    """``devices`` per process; the envs split over those of every process."""
    import jax
    n = jax.process_count()
    if num_envs % (devices * n):
        over = f"{devices * n} devices ({n} processes x {devices})" if n > 1 else f"{devices} devices"
        raise ConfigError(f"--devices: {num_envs} envs do not split evenly over {over}")


def build(run_dir: Path, devices: int = 1, overrides=None):
    """(env, params, agent_cfg, trainer) for the config saved in a run directory (with ``overrides``,
    e.g. play's evaluation settings); the envs are split over ``devices`` local devices of every
    process (a multi-process run always splits them)."""
    import jax
    env, params, agent_cfg = make_env(run_dir / "config.yaml", overrides)
    mesh = None
    if devices != 1 or jax.process_count() > 1:
        from mjxmimic.learning.parallel import env_mesh
        _check_split(agent_cfg.num_envs, devices)
        mesh = env_mesh(devices)
    return env, params, agent_cfg, build_trainer(env, params, agent_cfg, mesh)


class _Logger:
    def __init__(self, run_dir: Path, steps_per_iter: int, total, start: int):
        from tensorboardX import SummaryWriter
        from tqdm import tqdm
        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        self.steps_per_iter = steps_per_iter
        self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=sys.stdout,
                        mininterval=1.0)
        self.t_last, self.it_last, self.t0 = time.perf_counter(), start, time.perf_counter()

    def __call__(self, it: int, metrics):
        m = {k: float(v) for k, v in metrics.items()}  # the only host sync of an iteration
        now = time.perf_counter()
        sps = (it - self.it_last) * self.steps_per_iter / max(now - self.t_last, 1e-9)
        self.t_last, self.it_last = now, it
        m["env_steps_per_s"] = sps
        # Per-episode outcome rates among the episodes that ended this iteration (the env
        # metrics are per-step means; dividing by the per-step done rate gives per-episode).
        if m.get("done_frac", 0.0) > 0:
            for k in ("success", "fail", "timeout"):
                if f"env/term_{k}" in m:
                    m[f"episode_{k}_rate"] = m[f"env/term_{k}"] / m["done_frac"]
        m["wall_s"] = now - self.t0
        env_steps = it * self.steps_per_iter
        for k, v in m.items():
            if math.isfinite(v):
                self.tb.add_scalar(k, v, env_steps)
        self.jsonl.write(json.dumps({"iteration": it, "env_steps": env_steps, **m}) + "\n")
        self.jsonl.flush()
        post = {"sps": f"{sps:,.0f}"}
        post.update({short: f"{m[k]:.3g}" for k, short in _BAR if k in m})
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(it - self.bar.n)
        if "eval/episodes" in m:  # an evaluation ran after this iteration (--eval-every)
            shown = [(k, m[f"eval/{k}"]) for k in _EVAL_SHOWN if f"eval/{k}" in m]
            self.bar.write(f"evaluation after iteration {it}: " + ", ".join(f"{k} {v:.3g}" for k, v in shown))

    def close(self):
        self.bar.close()
        self.tb.close()
        self.jsonl.close()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(n for n, _ in registry.list_configs())
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.train", description=__doc__, formatter_class=_HelpFormatter,
                                 epilog=f"configs (--list-envs describes them): {names}")
    ap.add_argument("--env", help="config name (configs/<name>.yaml) or path to a config YAML")
    ap.add_argument("--list-envs", action="store_true", help="print every config name with its description and exit")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override, e.g. env.episode_length=5 or agent.actor_lr=5e-5 (repeatable)")
    ap.add_argument("--num-envs", type=int, help=f"parallel envs (env.num_envs; {CPU_NUM_ENVS} on a CPU, else the "
                    "config's)")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ap.add_argument("--out", help="new run directory (None: runs/<env>-<time>); a directory that holds a run is "
                    "refused")
    ap.add_argument("--iterations", type=int, help="stop after this many iterations")
    ap.add_argument("--minutes", type=float, help=f"stop after this much wall time (checkpointed); without this or "
                    f"--iterations: {CPU_MINUTES:g} on a CPU, {ACCEL_MINUTES:g} on a GPU/TPU")
    ap.add_argument("--save-every", type=int, default=50, help="checkpoint every N iterations")
    ap.add_argument("--keep", type=int, default=2, metavar="K", help="keep the last K checkpoints")
    ap.add_argument("--keep-best", action="store_true", help="also keep the checkpoint with the best --best-metric "
                    "(mean over the iterations since the previous save), in checkpoints/best")
    ap.add_argument("--best-metric", default="episode_return", help="metric (higher is better) for --keep-best; "
                    "episode_return is the mean task return of the episodes that ended")
    ap.add_argument("--eval-every", type=int, default=None, metavar="N",
                    help="every N iterations evaluate the deterministic policy (the mean action, as play and export "
                    "use it) in the training env (play's too, except that play starts tracking episodes from the clip's first "
                    "frame) and log eval/<metric> (e.g. eval/end/success); None: "
                    "--save-every when --best-metric is an eval/ metric (then it must be that), else never")
    ap.add_argument("--eval-episodes", type=int, default=256,
                    help="episodes per evaluation, one per env on their own batch (at most --num-envs envs)")
    ap.add_argument("--exact-resume", action="store_true", help="store the whole state in checkpoints (AMP replay "
                    "buffer included) so a resume is bitwise identical; larger checkpoints")
    ap.add_argument("--resume", metavar="DIR", help="run directory to continue from its last checkpoint")
    ap.add_argument("--force", action="store_true", help="with --resume: continue even though the config or code "
                    "changed since the run began (recorded in fingerprint.json)")
    ap.add_argument("--devices", default="auto", help="local GPUs/TPU cores (per process) to split the envs over: "
                    "a number, 'all', or 'auto' (1; all in a multi-process run)")
    multi = ap.add_argument_group("several processes/hosts (jax.distributed; every process runs the same command)")
    multi.add_argument("--coordinator", metavar="HOST:PORT", help=f"process 0's address and a free port (or "
                       f"${dist.ENV_COORDINATOR})")
    multi.add_argument("--num-processes", type=int, metavar="N", help=f"how many processes (or "
                       f"${dist.ENV_NUM_PROCESSES})")
    multi.add_argument("--process-id", type=int, metavar="I", help=f"this process's number, 0..N-1 (or "
                       f"${dist.ENV_PROCESS_ID})")
    multi.add_argument("--distributed", choices=("auto", "off"), default="auto", help="auto: multi-process when the "
                       "three settings above are given (flags or environment) or SLURM's srun started several tasks; "
                       "off: one process")
    return ap


def _new_run_dir(args) -> Path:
    name = Path(args.env).stem
    run_dir = Path(args.out) if args.out else default_runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    held = [f for f in RUN_FILES if (run_dir / f).exists()]
    if held:
        raise ConfigError(f"--out {run_dir} already holds a run ({', '.join(held)}); continue it with "
                          f"--resume {run_dir}, or choose another --out")
    return run_dir


def _prepare_run(args, backend: str, devices: int) -> dict:
    """Check the arguments against the run directory and write a new run's files (process 0
    only). Returns what every process needs: the run directory, seed, budget, checkpoint mode."""
    user_budget = args.iterations is not None or args.minutes is not None
    if args.resume:
        run_dir = Path(args.resume)
        mixed = [f for f, v in (("--env", args.env), ("--set", args.set), ("--num-envs", args.num_envs)) if v]
        if mixed:
            raise ConfigError(f"--resume takes the config from {run_dir / 'config.yaml'}; drop {', '.join(mixed)} "
                              "(or start a new run with --out)")
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise ConfigError(f"--resume {run_dir} continues in that directory; drop --out {args.out}")
        if not (run_dir / "config.yaml").exists():
            raise ConfigError(f"--resume: {run_dir} has no config.yaml (not a run directory)")
        run = yaml.safe_load((run_dir / "run.yaml").read_text())
        _check_fingerprint(run_dir, args.force)
        iterations, minutes = (args.iterations, args.minutes) if user_budget else \
            (run.get("iterations"), run.get("minutes"))
        return {"run_dir": str(run_dir), "seed": run["seed"], "iterations": iterations, "minutes": minutes,
                "exact": args.exact_resume or bool(run.get("exact_resume"))}
    run_dir = _new_run_dir(args)
    overrides = parse_overrides(args.set)
    if args.num_envs is None and "env.num_envs" not in overrides and backend == "cpu":
        # Thousands of MJX envs on a CPU make one iteration take minutes: start small there.
        args.num_envs = CPU_NUM_ENVS
        print(f"no GPU/TPU found: training {CPU_NUM_ENVS} envs on the CPU (--num-envs to change)", flush=True)
    if args.num_envs is not None:
        overrides["env.num_envs"] = str(args.num_envs)
    raw = _resolved_config(args.env, overrides)
    _check_split(int(raw["env"]["num_envs"]), devices)  # before anything is written
    iterations, minutes, exact = args.iterations, args.minutes, args.exact_resume
    if not user_budget:
        minutes = CPU_MINUTES if backend == "cpu" else ACCEL_MINUTES
        print(f"no --iterations/--minutes: stopping after {minutes:g} minutes on this {backend} "
              "(--minutes or --iterations to change)", flush=True)
    config_text = yaml.safe_dump(raw, sort_keys=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_text)
    (run_dir / "fingerprint.json").write_text(json.dumps(fingerprint(config_text), indent=1))
    (run_dir / "run.yaml").write_text(yaml.safe_dump(
        {"env": args.env, "seed": args.seed, "iterations": iterations, "minutes": minutes, "exact_resume": exact}))
    return {"run_dir": str(run_dir), "seed": args.seed, "iterations": iterations, "minutes": minutes, "exact": exact}


# Why the processes of a multi-process run stop (the largest any of them asks for wins).
_GO, _TIME, _SIGNAL = 0, 1, 2


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.list_envs:
        for name, desc in registry.list_configs():
            print(f"{name:14s} {desc}")
        return 0
    if not args.resume and not args.env:
        ap.error("--env is required (or --resume DIR)")

    # Before anything touches JAX's devices: join the other processes, if there are any.
    flags = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    multi = False
    try:
        if args.distributed == "off":
            given = [k for k, v in flags.items() if v is not None]
            if given:
                raise dist.DistributedError(f"--distributed off runs one process; drop {', '.join(given)}")
            multi = False
        else:
            multi = dist.initialize(args.coordinator, args.num_processes, args.process_id)
        if multi:  # the same command everywhere, or process 0's run dir would not fit the others
            dist.check_same({k: v for k, v in vars(args).items()
                             if k not in ("coordinator", "num_processes", "process_id", "distributed")})
    except dist.DistributedError as e:
        if not multi or dist.is_primary():  # the processes agreed on it: one of them says it
            print(f"error: {e}", file=sys.stderr)
        return 2

    import jax

    from mjxmimic.learning import Checkpointer, init_or_restore, train
    from mjxmimic.learning.ppo import abstract_like

    primary = dist.is_primary()
    say = print if primary else (lambda *a, **k: None)  # noqa: E731
    backend = jax.default_backend()
    enable_compile_cache(backend)  # GPU/TPU: a repeated or resumed run skips the ~90 s compile
    error = None
    try:
        if args.keep < 1:
            raise ConfigError(f"--keep: expected a number >= 1, got {args.keep}")
        eval_every = _eval_every(args)
        devices = _devices(args.devices, multi)
        setup = _prepare_run(args, backend, devices) if primary else None
    except ConfigError as e:
        setup = {"error": str(e)}
    if multi:  # process 0 has written the run directory (a barrier) and tells the others where
        setup = json.loads(dist.broadcast_text(json.dumps(setup) if primary else None))
    if "error" in setup:
        say(f"error: {setup['error']}", file=sys.stderr)
        return 2
    run_dir = Path(setup["run_dir"])
    seed, iterations, minutes, exact = setup["seed"], setup["iterations"], setup["minutes"], setup["exact"]
    try:
        if not (run_dir / "config.yaml").exists():
            raise ConfigError(f"process {jax.process_index()} cannot see {run_dir / 'config.yaml'}, which process 0 "
                              "wrote: every process needs the run directory on a shared filesystem")
        env, params, agent_cfg, trainer = build(run_dir, devices)
    except ConfigError as e:
        error = str(e)
        print(f"error: {e}" if primary else f"error: process {jax.process_index()}: {e}", file=sys.stderr)
    if (dist.agree_max(error is not None) if multi else error is not None):
        return 2  # every process stops when one cannot build the trainer

    steps_per_iter = agent_cfg.num_envs * agent_cfg.steps_per_iter
    split = f"{jax.process_count()} processes x {devices}" if multi else f"{devices}"
    say(f"run dir {run_dir}\n{jax.devices()[0].platform} x {split}: {agent_cfg.num_envs} envs x "
        f"{agent_cfg.steps_per_iter} steps per iteration, obs {env.obs_size}, actions {env.action_size}", flush=True)
    ckpt = Checkpointer(str(run_dir.resolve() / "checkpoints"), save_every=args.save_every, max_to_keep=args.keep,
                        exact=exact, best_metric=args.best_metric if args.keep_best else None)
    t0 = time.perf_counter()
    ts = init_or_restore(trainer, jax.random.PRNGKey(seed), ckpt)
    start = int(ts.iteration)
    if start:
        say(f"resumed from iteration {start}", flush=True)
    say("compiling the training iteration...", flush=True)
    log = _Logger(run_dir, steps_per_iter, iterations, start) if primary else None
    deadline = None if minutes is None else t0 + 60.0 * minutes
    signalled = []

    def log_fn(it, metrics):
        if log is not None:
            log(it, metrics)
        late = deadline is not None and time.perf_counter() > deadline
        if multi:  # every process stops after the same iteration, so that their saves match
            why = dist.agree_max(_SIGNAL if signalled else _TIME if late else _GO)
            if why == _SIGNAL:
                raise KeyboardInterrupt
            late = why == _TIME
        if late:
            raise _TimeUp

    def on_term(signum, frame):
        if multi:
            signalled.append(signum)  # acted on after this iteration, on every process (log_fn)
            return
        # Once: SLURM may signal both this process and the job script that forwards it, and a
        # second KeyboardInterrupt would cut the checkpoint save short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt  # same path as Ctrl-C: save the last completed iteration

    # SIGTERM: a scheduler's stop; SIGUSR1: SLURM's warning before the time limit
    # (#SBATCH --signal=B:USR1@300, forwarded by cluster/job.sh), which then requeues.
    # Several processes: Ctrl-C too only raises the flag, so that all stop after the same iteration.
    previous = {}
    for sig in STOP_SIGNALS + ((signal.SIGINT,) if multi else ()):
        try:
            previous[sig] = signal.signal(sig, on_term)
        except ValueError:  # not the main thread (e.g. called from a worker thread): no handler
            break
    try:
        evaluate_fn = None
        if eval_every:  # a fixed key: every evaluation plays the same episodes, so they compare
            eval_key = jax.random.PRNGKey(seed + 1)
            # Compile the evaluation (~1 min for MJX on a GPU) beside the training iteration rather than
            # stalling the first evaluation; should it fail, the first evaluation compiles and reports it.
            sizes = (args.eval_episodes, 10**7)  # episodes, max steps: the calls must match the compile
            like = abstract_like(ts)  # here: the loop may donate ts's buffers while the thread runs
            compiling = threading.Thread(target=_quietly, daemon=True,
                                         args=(trainer.compile_evaluate, like, *sizes))
            compiling.start()

            def evaluate_fn(s):
                compiling.join()
                return trainer.evaluate(s, eval_key, *sizes)
        ts = train(trainer, ts, iterations if iterations is not None else 2**31 - 1, ckpt, log_fn,
                   evaluate_fn, eval_every)
    except _TimeUp:
        pass  # train() already saved the last completed state
    except KeyboardInterrupt:
        say("\ninterrupted; last completed iteration checkpointed", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if log is not None:
            log.close()
        ckpt.wait()
        last = ckpt.latest_step()
        ckpt.close()
    say(f"done: {last} iterations in {time.perf_counter() - t0:.0f}s; checkpoints in {run_dir / 'checkpoints'}\n"
        f"next: python -m mjxmimic.play {run_dir}      # metrics table + mp4 of the policy\n"
        f"      tensorboard --logdir {run_dir / 'tb'}   # training curves", flush=True)
    return 0


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 -- the caller repeats the call and sees the error then
        pass


def _eval_every(args) -> int:
    """The evaluation interval (0: none), checked against --keep-best/--best-metric."""
    by_eval = args.keep_best and args.best_metric.startswith("eval/")
    every = args.eval_every if args.eval_every is not None else (args.save_every if by_eval else 0)
    if every < 0 or args.eval_episodes < 1:
        raise ConfigError(f"--eval-every must be >= 0 and --eval-episodes >= 1, got {every} and {args.eval_episodes}")
    # The best checkpoint scores the mean of its metric since the previous save; with more than one
    # evaluation per save that mean would mix states other than the one saved.
    if by_eval and (every == 0 or every != args.save_every):
        raise ConfigError(f"--best-metric {args.best_metric} is measured every --eval-every {every} iterations; it "
                          f"must equal --save-every {args.save_every} so that each saved state is the one evaluated")
    return every


class _TimeUp(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
