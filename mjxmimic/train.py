"""Train a named env+agent config:

    python -m mjxmimic.train --env k1_kick
    python -m mjxmimic.train --env k1_walk --num-envs 1024 --set agent.actor_lr=5e-5 --minutes 10
    python -m mjxmimic.train --resume runs/k1_walk-20261126-2300     # continue a run

A run directory holds the resolved config (config.yaml), run.yaml (seed, budget),
TensorBoard scalars (tb/), metrics.jsonl (one line per iteration) and orbax
checkpoints (checkpoints/), saved every --save-every iterations and at exit, Ctrl-C or SIGTERM
(a cluster scheduler's stop).
Each training iteration (rollout, returns, all PPO/AMP updates) is one jitted call;
this loop only logs and checkpoints.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import yaml

from mjxmimic.envs.registry import ConfigError, apply_overrides, load_config, make_env, parse_overrides, read_config
from mjxmimic.paths import IN_CHECKOUT, REPO_ROOT

CPU_NUM_ENVS = 64

# Metrics shown on the progress bar (when the run has them).
_BAR = (("episode_return", "ret"), ("episode_length", "len"), ("episode_success_rate", "succ"),
        ("episode_fail_rate", "fail"),
        ("env/joint_pos_err", "jerr"), ("env/key_pos_err", "kerr"), ("disc_agent_acc", "dacc"))


def _resolved_config(env_name: str, overrides: dict) -> dict:
    """The config file's mapping, its defaults merged in (self-contained), with overrides applied
    (validated by load_config)."""
    c = load_config(env_name, overrides)
    return apply_overrides(read_config(c["path"]), overrides)


def _make_trainer(env, params, agent_cfg, mesh=None):
    from mjxmimic.learning import AMPConfig, make_amp_trainer, make_trainer
    if isinstance(agent_cfg, AMPConfig):
        return make_amp_trainer(env, params, agent_cfg, mesh=mesh)
    return make_trainer(env, params, agent_cfg, mesh=mesh)


def _devices(arg: str) -> int:
    """--devices: a count of local devices ('all': every one)."""
    import jax
    have = len(jax.local_devices())
    if arg == "all":
        return have
    if not arg.isdigit() or int(arg) < 1:
        raise ConfigError(f"--devices: expected a number >= 1 or 'all', got {arg!r}")
    if int(arg) > have:
        raise ConfigError(f"--devices {arg}: this machine has {have} {jax.default_backend()} device(s)")
    return int(arg)


def _check_split(num_envs: int, devices: int):
    if num_envs % devices:
        raise ConfigError(f"--devices: {num_envs} envs do not split evenly over {devices} devices")


def build(run_dir: Path, devices: int = 1):
    """(env, params, agent_cfg, trainer) for the config saved in a run directory; the envs are
    split over ``devices`` local devices."""
    env, params, agent_cfg = make_env(run_dir / "config.yaml")
    mesh = None
    if devices != 1:
        from mjxmimic.learning.parallel import env_mesh
        _check_split(agent_cfg.num_envs, devices)
        mesh = env_mesh(devices)
    return env, params, agent_cfg, _make_trainer(env, params, agent_cfg, mesh)


class _Logger:
    def __init__(self, run_dir: Path, steps_per_iter: int, total: int, start: int):
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

    def close(self):
        self.bar.close()
        self.tb.close()
        self.jsonl.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", help="config name (configs/<name>.yaml) or path to a config YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override, e.g. env.episode_length=5 or agent.actor_lr=5e-5 (repeatable)")
    ap.add_argument("--num-envs", type=int, help="parallel envs (env.num_envs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="run directory (default runs/<env>-<time>)")
    ap.add_argument("--iterations", type=int, default=100_000, help="stop after this many iterations")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much wall time (checkpointed)")
    ap.add_argument("--save-every", type=int, default=50, help="checkpoint every N iterations")
    ap.add_argument("--resume", help="run directory to continue from its last checkpoint")
    ap.add_argument("--devices", default="1", help="local GPUs/TPU cores to split the envs over: a number or "
                    "'all' (default 1)")
    args = ap.parse_args(argv)

    import jax

    from mjxmimic.learning import Checkpointer, init_or_restore, train

    try:
        devices = _devices(args.devices)
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").exists():
                raise ConfigError(f"--resume: {run_dir} has no config.yaml (not a run directory)")
            run = yaml.safe_load((run_dir / "run.yaml").read_text())
            seed = run["seed"]
            iterations = args.iterations if "--iterations" in " ".join(argv or sys.argv) else run["iterations"]
        else:
            if not args.env:
                ap.error("--env is required (or --resume DIR)")
            overrides = parse_overrides(args.set)
            if args.num_envs is None and "env.num_envs" not in overrides and jax.default_backend() == "cpu":
                # Thousands of MJX envs on a CPU make one iteration take minutes: start small there.
                args.num_envs = CPU_NUM_ENVS
                print(f"no GPU/TPU found: training {CPU_NUM_ENVS} envs on the CPU (--num-envs to change)", flush=True)
            if args.num_envs is not None:
                overrides["env.num_envs"] = str(args.num_envs)
            raw = _resolved_config(args.env, overrides)
            _check_split(int(raw["env"]["num_envs"]), devices)  # before anything is written
            name = Path(args.env).stem
            runs = REPO_ROOT / "runs" if IN_CHECKOUT else Path.cwd() / "runs"
            run_dir = Path(args.out) if args.out else runs / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            seed, iterations = args.seed, args.iterations
            (run_dir / "run.yaml").write_text(yaml.safe_dump({"env": args.env, "seed": seed, "iterations": iterations}))
        env, params, agent_cfg, trainer = build(run_dir, devices)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    steps_per_iter = agent_cfg.num_envs * agent_cfg.steps_per_iter
    print(f"run dir {run_dir}\n{jax.devices()[0].platform} x {devices}: {agent_cfg.num_envs} envs x "
          f"{agent_cfg.steps_per_iter} steps per iteration, obs {env.obs_size}, actions {env.action_size}", flush=True)
    ckpt = Checkpointer(str(run_dir.resolve() / "checkpoints"), save_every=args.save_every)
    t0 = time.perf_counter()
    ts = init_or_restore(trainer, jax.random.PRNGKey(seed), ckpt)
    start = int(ts.iteration)
    if start:
        print(f"resumed from iteration {start}", flush=True)
    print("compiling the training iteration...", flush=True)
    log = _Logger(run_dir, steps_per_iter, iterations, start)
    deadline = None if args.minutes is None else t0 + 60.0 * args.minutes

    def log_fn(it, metrics):
        log(it, metrics)
        if deadline is not None and time.perf_counter() > deadline:
            raise _TimeUp

    def on_term(signum, frame):
        raise KeyboardInterrupt  # same path as Ctrl-C: save the last completed iteration

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (e.g. called from a worker thread): no handler
        previous = None
    try:
        ts = train(trainer, ts, iterations, ckpt, log_fn)
    except _TimeUp:
        pass  # train() already saved the last completed state
    except KeyboardInterrupt:
        print("\ninterrupted; last completed iteration checkpointed", flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        log.close()
        ckpt.wait()
        last = ckpt.latest_step()
        ckpt.close()
    print(f"done: {last} iterations in {time.perf_counter() - t0:.0f}s; checkpoints in {run_dir / 'checkpoints'}\n"
          f"evaluate with: python -m mjxmimic.play {run_dir}", flush=True)
    return 0


class _TimeUp(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
