"""Multi-GPU scaling: training throughput of one config on 1 vs N local GPUs (``train --devices``).

    python benchmarks/scaling.py --configs k1_walk k1_kick --cases 1x8192 2x8192 1x32768 2x32768 1x16384 \
        --iterations 8 --out scaling

A case ``DxE`` trains ``E`` envs in total split over ``D`` GPUs (``--devices D``). Each case is a
real ``python -m mjxmimic.train --iterations K`` run; its throughput is the mean of metrics.jsonl's
``env_steps_per_s`` over iterations 3..K (the first carries the compile, the second warms up), and
physics steps/s = env steps/s × physics substeps per control step.

Two phases so compilation does not eat the timing budget:

1. **compile**: every case at once, one iteration each, writing JAX's persistent compilation cache
   (compilation runs on the host's cores; the GPUs are barely used);
2. **time**: the cases again, now loading their programs from the cache. Single-GPU cases run two at
   a time, one per GPU (``CUDA_VISIBLE_DEVICES``), as the GPUs share nothing; multi-GPU cases run alone.

Scaling efficiency at the same envs per GPU = (N-GPU env steps/s) / (N × 1-GPU env steps/s). The
time of an N-GPU iteration above a 1-GPU iteration at the same envs per GPU is what the split costs
(the gradient all-reduce, the cross-device metric reductions and the synchronisation they force).
A markdown table goes to stdout and rows as JSON to ``<out>/scaling.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_case(s: str) -> tuple[int, int]:
    try:
        d, e = s.lower().split("x")
        d, e = int(d), int(e)
    except ValueError:
        raise SystemExit(f"--cases: expected DEVICESxENVS such as 2x8192, got {s!r}") from None
    if d < 1 or e < d or e % d:
        raise SystemExit(f"--cases {s}: {e} envs do not split evenly over {d} devices")
    return d, e


def steady_rate(run: Path, skip: int = 2) -> tuple[float, int]:
    """Mean env_steps_per_s of metrics.jsonl after the first ``skip`` iterations (and how many)."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rates = [r["env_steps_per_s"] for r in rows[skip:] if "env_steps_per_s" in r]
    if not rates:
        raise RuntimeError(f"{run}: fewer than {skip + 1} iterations logged")
    return sum(rates) / len(rates), len(rates)


def substeps(config: str) -> int:
    """Physics steps per control step of a config (the env's own figure)."""
    sys.path.insert(0, str(ROOT))
    from mjxmimic.envs.registry import make_env
    return int(make_env(config)[0].num_substeps)


def launch(config: str, devices: int, envs: int, iterations: int, run: Path, gpus: str | None, log: Path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    cmd = [sys.executable, "-m", "mjxmimic.train", "--env", config, "--num-envs", str(envs), "--devices", str(devices),
           "--iterations", str(iterations), "--out", str(run), "--save-every", "1000000"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_all(procs: list) -> None:
    for p, what in procs:
        if p.wait() != 0:
            print(f"warning: {what} exited with {p.returncode}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["k1_walk", "k1_kick"])
    ap.add_argument("--cases", nargs="+", default=["1x8192", "2x8192", "1x16384", "1x32768", "2x32768"])
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--gpus", type=int, default=2, help="GPUs on this host (single-GPU cases run this many at a time)")
    ap.add_argument("--out", default="scaling")
    ap.add_argument("--skip-compile", action="store_true", help="no compile phase (the cache is already warm)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = [(c, *parse_case(s)) for c in args.configs for s in args.cases]
    t0 = time.perf_counter()

    if not args.skip_compile:  # phase 1: fill the compilation cache, all cases at once
        procs = [(launch(c, d, e, 1, out / f"warm_{c}_{d}x{e}", None, out / f"warm_{c}_{d}x{e}.log"), f"warm {c} {d}x{e}")
                 for c, d, e in cases]
        wait_all(procs)
        print(f"compile phase: {time.perf_counter() - t0:.0f} s", flush=True)

    single = [x for x in cases if x[1] == 1]
    multi = [x for x in cases if x[1] > 1]
    for i in range(0, len(single), args.gpus):  # phase 2: single-GPU cases side by side, one per GPU
        group = single[i:i + args.gpus]
        wait_all([(launch(c, d, e, args.iterations, out / f"{c}_{d}x{e}", str(g), out / f"{c}_{d}x{e}.log"),
                   f"{c} {d}x{e}") for g, (c, d, e) in enumerate(group)])
    for c, d, e in multi:
        wait_all([(launch(c, d, e, args.iterations, out / f"{c}_{d}x{e}", None, out / f"{c}_{d}x{e}.log"), f"{c} {d}x{e}")])

    rows, rate = [], {}
    for c, d, e in cases:
        try:
            sps, n = steady_rate(out / f"{c}_{d}x{e}")
        except (OSError, RuntimeError) as err:
            print(f"warning: {c} {d}x{e}: {err}", flush=True)
            continue
        rate[(c, d, e)] = sps
        rows.append({"config": c, "devices": d, "envs": e, "envs_per_device": e // d, "env_steps_per_s": sps,
                     "iterations_timed": n})
    subs = {c: substeps(c) for c in args.configs}
    print("\n| config | GPUs | envs | envs/GPU | env steps/s | physics steps/s | vs 1 GPU, same envs | "
          "efficiency, same envs/GPU |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, d, e = r["config"], r["devices"], r["envs"]
        r["physics_steps_per_s"] = r["env_steps_per_s"] * subs[c]
        same_total = rate.get((c, 1, e))
        same_per = rate.get((c, 1, e // d))
        r["speedup_same_envs"] = r["env_steps_per_s"] / same_total if same_total and d > 1 else None
        r["efficiency_same_envs_per_gpu"] = r["env_steps_per_s"] / (d * same_per) if same_per and d > 1 else None
        fmt = lambda x: f"{x:.2f}" if x else "-"  # noqa: E731
        print(f"| {c} | {d} | {e} | {e // d} | {r['env_steps_per_s']:,.0f} | {r['physics_steps_per_s']:,.0f} | "
              f"{fmt(r['speedup_same_envs'])} | {fmt(r['efficiency_same_envs_per_gpu'])} |")
    (out / "scaling.json").write_text(json.dumps(rows, indent=1))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
