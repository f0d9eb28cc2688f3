"""Physics throughput: MJX steps/s for our robot models at several batch sizes, beside
multithreaded MuJoCo C (mujoco.rollout) on the same host, with JIT compile time.

    python benchmarks/physics.py [--robots k1,g1] [--batches 1024,4096,16384,32768] [--steps 100]

Each figure is physics steps (one model timestep of one robot) per wall-clock second.
Controls are the standing pose plus noise, so contacts are those of a standing robot.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def bench_mjx(robot, batches, nsteps):
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    mx = robot.mjx_model()
    d0 = mjx.make_data(mx).replace(qpos=jnp.asarray(robot.default_qpos))
    q0 = jnp.asarray(robot.default_joint_pos)

    def rollout(d, key):
        def body(d, k):
            d = mjx.step(mx, d.replace(ctrl=q0 + 0.05 * jax.random.normal(k, q0.shape)))
            return d, None
        d, _ = jax.lax.scan(body, d, jax.random.split(key, nsteps))
        return d

    rows = []
    for b in batches:
        f = jax.jit(jax.vmap(rollout))
        ds = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (b,) + x.shape), d0)
        keys = jax.random.split(jax.random.PRNGKey(0), b)
        t0 = time.perf_counter()
        r = f(ds, keys)
        jax.block_until_ready(r)
        compile_s = time.perf_counter() - t0
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = f(ds, keys)
            jax.block_until_ready(r)
            ts.append(time.perf_counter() - t0)
        z = np.asarray(r.qpos[:, 2])
        rows.append(dict(batch=b, sps=b * nsteps / float(np.median(ts)), compile_s=compile_s,
                         upright=float(np.mean(np.abs(z - robot.default_qpos[2]) < 0.05))))
    return rows


def bench_c(robot, batch, nsteps, nthread):
    import mujoco
    from mujoco import rollout

    m = robot.model
    d = mujoco.MjData(m)
    d.qpos[:] = robot.default_qpos
    mujoco.mj_forward(m, d)
    st = np.zeros(mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(m, d, st, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    init = np.tile(st, (batch, 1))
    ctrl = robot.default_joint_pos + 0.05 * np.random.default_rng(0).normal(size=(batch, nsteps, m.nu))
    datas = [mujoco.MjData(m) for _ in range(nthread)]
    rollout.rollout(m, datas, init, ctrl)
    t0 = time.perf_counter()
    rollout.rollout(m, datas, init, ctrl)
    return batch * nsteps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--robots", default="k1,g1")
    ap.add_argument("--batches", default="1024,4096,16384,32768")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--c-batch", type=int, default=1024)
    args = ap.parse_args()
    import jax
    import mujoco

    from mjxmimic.robots import load_robot

    print(f"jax {jax.__version__} {jax.devices()} mujoco {mujoco.__version__}", flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    print("| robot | engine | batch | physics steps/s | compile s | upright after run |")
    print("|---|---|---|---|---|---|")
    for name in args.robots.split(","):
        robot = load_robot(name)
        for r in bench_mjx(robot, batches, args.steps):
            print(f"| {name} | MJX (JAX) | {r['batch']} | {r['sps']:,.0f} | {r['compile_s']:.1f} | {r['upright']:.2f} |", flush=True)
        nth = os.cpu_count()
        c = bench_c(robot, args.c_batch, args.steps, nth)
        print(f"| {name} | MuJoCo C rollout, {nth} threads | {args.c_batch} | {c:,.0f} | - | - |", flush=True)


if __name__ == "__main__":
    main()
