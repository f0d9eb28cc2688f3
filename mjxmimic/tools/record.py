"""Record a trained tracking policy's simulated motion as clips: style data a simulated robot can reach.

    python -m mjxmimic.tools.record RUN_DIR --out DIR [--episodes N --perturbed] [--loop-seconds 5] [--seconds S]

For each clip of the run's motion file (a clip or a dataset YAML), the deterministic policy tracks
it from its first frame with ``play``'s evaluation settings (no observation or reset noise): a
non-looping clip for its length, a looping one for ``--loop-seconds`` (several cycles), each at
most ``--seconds``. The simulated root and joints at every control step become a clip of the same
name in DIR (npz, ``clamp``, fps = the control rate), and the clips a dataset YAML named like the
source with the source's weights. ``--episodes N --perturbed`` records N episodes of each clip
from the training's perturbed starts (clips ``<name>_<k>``, 1/N of the weight each). An episode
that ends early (a fall or a tracking failure) is left out with a warning; if none is left, or
DIR already holds a file of this recording's names, nothing is written.

Why: a converged AMP discriminator tells any simulated motion from a few kinematic clips, which
are thin curves in its input (``benchmarks/RESULTS.md``, kick style). Clips recorded in the
simulator, from perturbed starts, are motion a simulated robot can reach, with a tracker's spread.
Each episode is a thin curve too: trained on 3 episodes per clip, a converged discriminator still
tells a fourth apart (agent accuracy 0.95, same file), so record many; a clip's episodes run side
by side in one compiled call.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mjxmimic.motions.clip import Clip, MotionError

__all__ = ["clip_sources", "episode_name", "record_clips", "main"]


def episode_name(name: str, k: int, episodes: int) -> str:
    """The recorded clip's name: the source's, with ``_<k>`` when several episodes are recorded."""
    return name if episodes == 1 else f"{name}_{k}"


def clip_sources(motion_file: Path, robot):
    """(names, weights) of the clips of a run's motion file, in MotionLib order: a dataset YAML's
    entries (read by :func:`~mjxmimic.motions.io.load_dataset`, with its checks), or the one clip."""
    from mjxmimic.motions.io import load_dataset

    motion_file = Path(motion_file)
    if motion_file.suffix.lower() not in (".yaml", ".yml"):
        return [motion_file.stem], [1.0]
    ds = load_dataset(motion_file, robot)
    return [f.stem for f in ds.files], [float(w) for w in ds.weights]


def record_clips(env, params, policy_fn, names, loop_seconds: float = 5.0, seconds: float | None = None,
                 episodes: int = 1, key=None):
    """({name: Clip} of the episodes tracked to their end, {name: reason} of those left out). Clip
    ``i`` is chosen by giving it all the sampling weight; the env must start episodes at a clip's
    first frame (play's evaluation settings of the tracking envs). With ``episodes`` > 1 the
    names are ``<name>_<k>`` and episode k uses ``fold_in(key, k)``."""
    import jax
    import jax.numpy as jnp

    lib = params.motion
    if lib is None:
        raise ValueError("record: the run's env has no motion clips")
    if len(names) != lib.num_motions:
        raise ValueError(f"record: {len(names)} clip names for a MotionLib of {lib.num_motions} clips")
    dt = float(env.control_dt)
    lengths = np.where(np.asarray(lib.wrap), loop_seconds, np.asarray(lib.length, np.float64))
    if seconds:
        lengths = np.minimum(lengths, seconds)
    frames = [max(int(np.floor(L / dt + 1e-6)), 2) for L in lengths]
    steps = max(frames) - 1
    robot = env.robot

    def run(weights, key):
        p = params.replace(motion=lib.replace(weights=weights))
        s0 = env.reset(p, key)
        if not {"motion_id", "motion_time0"} <= set(s0.info):
            raise ValueError("record: the env's episodes do not follow one clip from a start time "
                             "(record needs a tracking run)")

        def body(s, _):
            s = env.step(p, s, policy_fn(s.obs[None])[0])
            return s, (s.physics.qpos, s.done)
        _, (q, done) = jax.lax.scan(body, s0, None, length=steps)
        return (jnp.concatenate([s0.physics.qpos[None], q]), done, s0.info["motion_id"],
                s0.info["motion_time0"])

    # One compiled call per clip runs all its episodes side by side (episode k: fold_in(key, k)).
    run = jax.jit(jax.vmap(run, in_axes=(None, 0)))
    key = jax.random.PRNGKey(0) if key is None else key
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(episodes))
    clips, skipped = {}, {}
    for i in range(len(names)):
        out = [np.asarray(x) for x in run(jnp.eye(lib.num_motions, dtype=jnp.float32)[i], keys)]
        for k, (q, done, mid, t0) in enumerate(zip(*out)):
            name = episode_name(names[i], k, episodes)
            if int(mid) != i or float(t0) != 0.0:
                raise ValueError(f"record: the env started clip {int(mid)} at {float(t0):.3f} s, not clip {i} at 0 s; "
                                 "recording needs episodes that start at a clip's first frame (a tracking run)")
            n = frames[i]
            # done[k] ends the step that gives frame k + 1 (the state after it is the next episode's reset).
            ended = np.flatnonzero(done[: n - 1])
            if ended.size:
                skipped[name] = f"the episode ended at {(ended[0] + 1) * dt:.2f} s of {lengths[i]:.2f} s"
                continue
            clips[name] = _clip(q[:n], dt, robot, name)
    return clips, skipped


def _clip(q, dt: float, robot, name: str) -> Clip:
    """A recorded episode's qpos [T, nq] as a clamped clip at the control rate."""
    return Clip(fps=1.0 / dt, loop="clamp", root_pos=q[:, :3].astype(np.float64),
                root_rot=q[:, 3:7].astype(np.float64), joint_pos=q[:, robot.qpos_idx].astype(np.float64),
                joint_names=tuple(robot.joint_names), name=name)


def _dataset_yaml(run_dir: Path, motion_file: Path, names, weights, cmd: str) -> str:
    lines = [f"# Generated by `{cmd}`; do not edit by hand.",
             f"# The clips of {motion_file.name} as tracked in simulation by the policy of {run_dir.name}",
             "# (mjxmimic.tools.record): simulated root and joints at the control rate.", "motions:"]
    lines += [f"  - {{file: {n}.npz, weight: {w:g}}}" for n, w in zip(names, weights)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.tools.record", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a tracking run (train --out)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the clips and the dataset YAML")
    ap.add_argument("--episodes", type=int, default=1, help="episodes recorded per clip")
    ap.add_argument("--perturbed", action="store_true", help="start from the training's reset noise (with --episodes)")
    ap.add_argument("--loop-seconds", type=float, default=5.0, help="how long to record a looping clip")
    ap.add_argument("--seconds", type=float, help="record at most this much of each clip (default: all of it)")
    ap.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    ap.add_argument("--best", action="store_true", help="the best checkpoint")
    args = ap.parse_args(argv)
    if (args.seconds is not None and args.seconds <= 0) or args.loop_seconds <= 0:
        ap.error("--seconds and --loop-seconds must be positive")
    if args.episodes < 1:
        ap.error("--episodes must be >= 1")

    from mjxmimic.envs.registry import load_config
    from mjxmimic.io_util import atomic_write
    from mjxmimic.play import load_policy

    loaded = load_policy(args.run_dir, args.step, args.best, perturbed=args.perturbed)
    if loaded is None:
        return 1
    env, params, _, _, policy_fn = loaded
    motion_file = load_config(args.run_dir / "config.yaml")["motion_file"]
    if motion_file is None:
        print("error: the run has no env.motion_file (record needs a tracking run)", file=sys.stderr)
        return 1
    names, weights = clip_sources(motion_file, env.robot)
    out_yaml = args.out / (motion_file.name if motion_file.suffix.lower() in (".yaml", ".yml")
                           else f"{motion_file.stem}.yaml")
    planned = [(episode_name(n, k, args.episodes), w / args.episodes) for n, w in zip(names, weights)
               for k in range(args.episodes)]
    taken = [p.name for p in [out_yaml] + [args.out / f"{n}.npz" for n, _ in planned] if p.exists()]
    if taken:   # never mix two recordings
        print(f"error: {args.out} already holds {taken[:3]}; choose another --out", file=sys.stderr)
        return 1
    try:
        clips, skipped = record_clips(env, params, policy_fn, names, args.loop_seconds, args.seconds, args.episodes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, why in skipped.items():
        print(f"warning: {name} left out: {why}", file=sys.stderr)
    if not clips:
        print("error: no clip was tracked to its end; nothing written", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, clip in clips.items():
        clip.save_npz(args.out / f"{name}.npz")
    kept = [(n, w) for n, w in planned if n in clips]
    cmd = " ".join(["python -m mjxmimic.tools.record", str(args.run_dir), "--out", str(args.out)]
                   + (["--episodes", str(args.episodes)] if args.episodes > 1 else [])
                   + (["--perturbed"] if args.perturbed else [])
                   + (["--loop-seconds", f"{args.loop_seconds:g}"] if args.loop_seconds != 5.0 else [])
                   + (["--seconds", f"{args.seconds:g}"] if args.seconds else []))
    atomic_write(out_yaml, _dataset_yaml(args.run_dir, motion_file, [n for n, _ in kept], [w for _, w in kept], cmd))
    for name, clip in clips.items():
        print(f"{name}: {clip.num_frames} frames at {clip.fps:g} fps")
    print(f"wrote {len(clips)} clip(s) and {out_yaml}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MotionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
