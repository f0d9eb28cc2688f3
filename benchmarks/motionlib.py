"""MotionLib sampling speed: precomputed body FK (interpolated) vs in-graph MJX kinematics.

    python benchmarks/motionlib.py [--robot g1] [--envs 4096] [--iters 50] [--motions PATH ...]

Runs on whatever device JAX sees and prints a table (one jitted call = sample a whole
batch of reference frames at random motions/times, including body positions/rotations).
Also reports the interpolation error of the precomputed path against exact FK at the
interpolated pose (mid-frame times, the worst case). Without --motions it uses the G1
clips in ../shared/motions/mimickit_g1 or, if absent, a synthetic clip.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from mjxmimic.motions.lib import build_motion_lib, load_motion_lib, sample, sample_mjx, sample_motions, sample_times
from mjxmimic.robots import load_robot
from mjxmimic.tools.synthetic import synthetic_clip

SHARED = Path(__file__).resolve().parents[2] / "shared" / "motions" / "mimickit_g1"


def _time(fn, *args, iters, repeats=5):
    """Best (min) mean time per call over ``repeats`` blocks: robust to a busy machine."""
    out = fn(*args)
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(max(iters // repeats, 1)):
            out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / max(iters // repeats, 1))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--robot", default="g1")
    ap.add_argument("--envs", type=int, nargs="+", default=[4096])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--motions", nargs="*")
    a = ap.parse_args(argv)
    robot = load_robot(a.robot)
    if a.motions:
        lib = load_motion_lib(a.motions, robot)
    elif a.robot == "g1" and SHARED.exists():
        lib = load_motion_lib(sorted(SHARED.glob("*.pkl")), robot)
    else:
        lib = build_motion_lib([synthetic_clip(robot, 120, 30.0, "wrap", speed=0.5, yaw_rate=0.3, amp=0.5, freq=0.7)],
                               robot)
    mjx_model = robot.mjx_model()
    print(f"device: {jax.devices()[0]} | robot {a.robot} ({robot.model.nbody} bodies) | "
          f"{lib.num_motions} motions, {lib.total_frames} frames")

    f_pre = jax.jit(lambda lib, ids, t: sample(lib, ids, t))
    f_mjx = jax.jit(lambda lib, m, ids, t: sample_mjx(lib, m, ids, t))
    rows = []
    for n in a.envs:
        k1, k2 = jax.random.split(jax.random.PRNGKey(n))
        ids = sample_motions(lib, k1, n)
        t = sample_times(lib, k2, ids)
        for name, fn, args in (("precomputed (interpolated)", f_pre, (lib, ids, t)),
                               ("MJX kinematics in-graph", f_mjx, (lib, mjx_model, ids, t))):
            c0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            compile_s = time.perf_counter() - c0
            dt = _time(fn, *args, iters=a.iters)
            rows.append((name, n, compile_s, dt * 1e3, n / dt / 1e6))
    print(f"\n{'path':<26} {'envs':>6} {'first call s':>12} {'ms/call':>9} {'M frames/s':>11}")
    for r in rows:
        print(f"{r[0]:<26} {r[1]:>6} {r[2]:>12.2f} {r[3]:>9.3f} {r[4]:>11.3f}")

    # accuracy of the precomputed path at mid-frame times (worst case for interpolation)
    ids = jnp.repeat(jnp.arange(lib.num_motions), 64)
    frac = (jnp.tile(jnp.arange(64), lib.num_motions) % jnp.maximum(lib.num_frames[ids] - 1, 1)) + 0.5
    t = frac / lib.fps[ids]
    a_pre, a_mjx = f_pre(lib, ids, t), f_mjx(lib, mjx_model, ids, t)
    err = jnp.linalg.norm(a_pre.body_pos[:, 1:] - a_mjx.body_pos[:, 1:], axis=-1)
    print(f"\nprecomputed vs exact FK at mid-frame times: body position error max {float(err.max()) * 1e3:.2f} mm, "
          f"mean {float(err.mean()) * 1e3:.3f} mm")


if __name__ == "__main__":
    main()
