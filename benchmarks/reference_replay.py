"""Can the servos alone play a clip back? A feasibility probe for DeepMimic (CPU, MuJoCo C).

    python benchmarks/reference_replay.py [--robot k1 g1] [--starts 8] [--seconds 10] [--clips PATH ...]

For each clip and each of ``--starts`` evenly spaced start times: put the robot exactly on the
reference (pose and velocities), then at the control rate (30 Hz) set every position servo's
target to the reference joint angle and simulate with the shipped model. No policy, no feedback
on balance. Reports how long the robot stays up (no collision geom other than the contact
bodies' within ``ground_contact_height`` of the floor, the env's fall test) and the mean joint
error until then. A clip the servos alone keep up for its whole length needs only small
corrections from a policy; one that falls in a fraction of a second needs balance from scratch.
Without --clips it uses each robot's shipped walk, stand and kick clips and, for G1, MimicKit's
real clips in ../shared/motions/mimickit_g1.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import mujoco
import numpy as np

from mjxmimic import math as rmath
from mjxmimic.motions.io import load_clip
from mjxmimic.robots import load_robot
from mjxmimic.robots.geometry import geom_min_z
from mjxmimic.paths import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "motions" / "mimickit_g1"
CONTROL_DT = 1.0 / 30.0


def _joint_ref(clip, t):
    """Reference joint angles at time t (looped or held), linear between frames."""
    x = t * clip.fps
    n = clip.num_frames
    if clip.loop == "wrap":
        x = x % (n - 1)  # last frame == first
    x = min(x, n - 1)
    i = int(np.floor(x))
    j, a = min(i + 1, n - 1), x - i
    return (1 - a) * clip.joint_pos[i] + a * clip.joint_pos[j]


def replay(robot, clip, start: float, seconds: float, ground_contact_height: float = 0.01):
    """(seconds upright, mean joint error in rad while upright) for one start time."""
    m = robot.model
    d = mujoco.MjData(m)
    clip = clip.for_robot(robot.joint_names)
    q = clip.qpos(robot)
    v_lin, w_world, jv = clip.velocities()
    f = min(int(round(start * clip.fps)), clip.num_frames - 1)
    d.qpos[:] = q[f]
    d.qvel[:3] = v_lin[f]
    # the free joint's angular velocity is in the root frame
    d.qvel[3:6] = np.asarray(rmath.quat_rotate_inv(q[f, 3:7], w_world[f]))
    d.qvel[robot.qvel_idx] = jv[f]
    mujoco.mj_forward(m, d)
    fall_geoms = robot.fall_geom_ids()
    substeps = int(round(CONTROL_DT / m.opt.timestep))
    errs, steps = [], 0
    while steps < round(seconds / CONTROL_DT):
        d.ctrl[:] = _joint_ref(clip, start + (steps + 1) * CONTROL_DT)
        for _ in range(substeps):
            mujoco.mj_step(m, d)
        steps += 1
        t = steps * CONTROL_DT
        z = np.asarray(geom_min_z(m.geom_type[fall_geoms], m.geom_size[fall_geoms],
                                  d.geom_xpos[fall_geoms], d.geom_xmat[fall_geoms].reshape(-1, 3, 3)))
        if not np.all(np.isfinite(d.qpos)) or np.any(z < ground_contact_height):
            break
        ref = _joint_ref(clip, start + t)
        errs.append(np.mean(np.abs(rmath.wrap_angle(d.qpos[robot.qpos_idx] - ref))))
    return steps * CONTROL_DT, (float(np.mean(errs)) if errs else float("nan"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--robot", nargs="+", default=["k1", "g1"])
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clips", nargs="*", help="clip files (default: shipped walk/stand/kick, MimicKit's G1 clips)")
    a = ap.parse_args(argv)
    print("| robot | clip | clip length s | loop | starts | time upright s (mean / min / max) "
          "| upright whole run | joint error rad |\n|---|---|---|---|---|---|---|---|")
    for name in a.robot:
        robot = load_robot(name)
        paths = [Path(p) for p in a.clips] if a.clips else (
            [REPO_ROOT / "motions" / name / f"{c}.npz" for c in ("stand", "walk", "walk_fast", "kick_right")]
            + (sorted(SHARED.glob("*.pkl")) if name == "g1" and SHARED.exists() else []))
        for p in paths:
            clip = load_clip(p, robot)
            runs = [replay(robot, clip, s, a.seconds)
                    for s in np.linspace(0, clip.duration, a.starts, endpoint=False)]
            up = np.array([r[0] for r in runs])
            err = np.nanmean([r[1] for r in runs])
            print(f"| {name} | {p.name} | {clip.duration:.2f} | {clip.loop} | {len(runs)} | "
                  f"{up.mean():.2f} / {up.min():.2f} / {up.max():.2f} | {np.mean(up >= a.seconds - 1e-6):.0%} | "
                  f"{err:.3f} |", flush=True)


if __name__ == "__main__":
    main()
