"""Tracking benchmark: train the tracking env on real clips, then evaluate each policy from the
clip's first frame with the deterministic policy.

    python benchmarks/tracking.py --robot g1 --clips ../shared/motions/mimickit_g1/g1_walk.pkl --minutes 6
    python benchmarks/tracking.py --robot g1 --clips A.pkl B.pkl --minutes 10 --together   # one policy, both clips

Each clip (or, with ``--together``, the set as one dataset) is trained by ``python -m mjxmimic.train
--env <robot>_track`` for ``--minutes`` of wall time *including* compilation, then evaluated by
``python -m mjxmimic.play --json`` (the tracking env's evaluation overrides: first frame, no
observation noise, the clip's end counts as success). Reported per run:

- completion: fraction of evaluation episodes that reach the clip's end (or the 10 s episode limit
  for cyclic clips) without a termination; ``clean`` starts exactly on the first frame, ``perturbed``
  adds the training's reset noise to the start (so episodes differ and the rate is a rate);
- joint error (mean |Δq|, rad) and tracked-body error (mean position error relative to the anchor, m);
- env steps and wall time of training.

A markdown table goes to stdout and, with ``--out``, the rows as JSON to ``<out>/tracking.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _dataset(clips: list[Path], out: Path) -> Path:
    """A dataset YAML listing the clips with equal weights (for --together)."""
    out.mkdir(parents=True, exist_ok=True)
    ds = out / "dataset.yaml"
    ds.write_text(yaml.safe_dump({"motions": [{"file": str(c.resolve()), "weight": 1.0} for c in clips]}))
    return ds


def _last_metrics(run: Path) -> dict:
    lines = (run / "metrics.jsonl").read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _save(rows: list, out: Path):
    """Rows so far (written after every step, so a run cut short still leaves its results)."""
    (out / "tracking.json").write_text(json.dumps(rows, indent=1))


def run_one(name: str, motion: Path, args, out: Path, rows: list) -> dict:
    from mjxmimic import play, train

    run = out / name
    sets = [f"env.motion_file={motion.resolve()}"] + [s for s in args.set]
    argv = ["--env", args.config or f"{args.robot}_track", "--minutes", str(args.minutes), "--out", str(run),
            "--seed", str(args.seed)]
    if args.num_envs:
        argv += ["--num-envs", str(args.num_envs)]
    for s in sets:
        argv += ["--set", s]
    t0 = time.perf_counter()
    rc = train.main(argv)
    wall = time.perf_counter() - t0
    if rc != 0:
        rows.append({"run": name, "error": f"train exited {rc}"})
        return rows[-1]
    last = _last_metrics(run)
    row = {"run": name, "clip": str(motion), "train_wall_s": round(wall, 1), "env_steps": int(last.get("env_steps", 0)),
           "iterations": int(last.get("iteration", 0)),
           "train_steps_per_s": round(float(last.get("env_steps", 0)) / max(wall, 1e-9))}
    rows.append(row)
    _save(rows, out)
    for mode, extra in (("clean", []), ("perturbed", ["--perturbed"])):
        js = run / f"eval_{mode}.json"
        rc = play.main([str(run), "--no-video", "--episodes", str(args.episodes), "--json", str(js)] + extra)
        if rc != 0:
            row[f"{mode}_error"] = f"play exited {rc}"
            continue
        m = json.loads(js.read_text())
        row[f"{mode}_completion"] = m.get("completion")
        row[f"{mode}_joint_err"] = m.get("step/joint_pos_err")
        row[f"{mode}_body_err"] = m.get("step/body_pos_err")
        row[f"{mode}_episode_s"] = m.get("episode_length_s")
        _save(rows, out)
    if args.video:
        play.main([str(run), "--episodes", "8", "--video-seconds", str(args.video_seconds)])
    return row


def _fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--robot", required=True, choices=["g1", "k1"])
    ap.add_argument("--clips", nargs="+", required=True, type=Path, help="clip files (any format load_clip reads)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time per run, compile included")
    ap.add_argument("--together", action="store_true", help="one policy on all clips (a dataset) instead of one each")
    ap.add_argument("--config", help="config name or YAML (default <robot>_track)")
    ap.add_argument("--num-envs", type=int, default=None, help="parallel envs (default: the config's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--episodes", type=int, default=256, help="evaluation episodes per mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--video", action="store_true", help="also render play.mp4 per run")
    ap.add_argument("--video-seconds", type=float, default=6.0)
    ap.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temp folder)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="tracking-"))
    out.mkdir(parents=True, exist_ok=True)
    missing = [str(c) for c in args.clips if not c.exists()]
    if missing:
        print(f"error: clip(s) not found: {missing}", file=sys.stderr)
        return 2
    if args.together:
        jobs = [("+".join(c.stem for c in args.clips), _dataset(args.clips, out / "dataset"))]
    else:
        jobs = [(c.stem, c) for c in args.clips]
    rows: list = []
    for name, motion in jobs:
        run_one(name, motion, args, out, rows)
    print(f"\n{args.robot}, {args.minutes:g} min per run (compile included), runs in {out}\n")
    print("| run | completion (clean) | completion (perturbed) | joint err rad (perturbed) | body err m (perturbed) "
          "| env steps | train wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {_fmt(r.get('clean_completion'), True)} | {_fmt(r.get('perturbed_completion'), True)} "
              f"| {_fmt(r.get('perturbed_joint_err'))} | {_fmt(r.get('perturbed_body_err'))} "
              f"| {r.get('env_steps', '-'):,} | {_fmt(r.get('train_wall_s'))} |" if "error" not in r
              else f"| {r['run']} | {r['error']} |||||")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
