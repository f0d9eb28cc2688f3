"""Cost of the soccer ball: MJX physics step of a robot alone vs the same robot in the
ball scene (mjxmimic.envs.scene), at a small batch, timed alternately.

    python benchmarks/ball_scene.py [--robot k1] [--batch 32] [--steps 40] [--reps 7]

Prints ms per physics step (whole batch) for each model and the ratio. Controls are the
standing pose plus noise; the ball starts 0.3 m in front of the robot, rolling into its
feet, so the ball-foot pairs are active.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--robot", default="k1")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--contacts", default="shins", help="BallConfig.robot_contacts")
    a = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    from mjxmimic.envs.scene import BallConfig, build_ball_scene
    from mjxmimic.robots import load_robot

    robot = load_robot(a.robot)
    scene = build_ball_scene(robot, BallConfig(robot_contacts=a.contacts))
    q_ball = scene.default_qpos.copy()
    q_ball[scene.ball_qpos_adr] = 0.3
    qv_ball = np.zeros(scene.model.nv)
    qv_ball[scene.ball_qvel_adr] = -1.0

    def make(mx, qpos, qvel):
        d0 = mjx.make_data(mx).replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32))
        q0 = jnp.asarray(robot.default_joint_pos, jnp.float32)

        def roll(d, key):
            def body(d, k):
                return mjx.step(mx, d.replace(ctrl=q0 + 0.05 * jax.random.normal(k, q0.shape))), None
            return jax.lax.scan(body, d, jax.random.split(key, a.steps))[0]

        f = jax.jit(jax.vmap(roll))
        ds = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (a.batch,) + x.shape), d0)
        keys = jax.random.split(jax.random.PRNGKey(0), a.batch)
        t0 = time.perf_counter()
        jax.block_until_ready(f(ds, keys))
        return (lambda: jax.block_until_ready(f(ds, keys))), time.perf_counter() - t0

    alone, c0 = make(robot.mjx_model(), robot.default_qpos, np.zeros(robot.model.nv))
    ball, c1 = make(scene.mjx_model(), q_ball, qv_ball)
    ta, tb = [], []
    for _ in range(a.reps):
        for fn, out in ((alone, ta), (ball, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    ms = lambda ts: 1e3 * min(ts) / a.steps  # noqa: E731
    print(f"{a.robot} batch {a.batch}: robot alone {ms(ta):.2f} ms/step (compile {c0:.0f}s); "
          f"robot+ball ({scene.model.npair} pairs, contacts={a.contacts}) {ms(tb):.2f} ms/step (compile {c1:.0f}s); "
          f"ratio {min(tb) / min(ta):.2f}")


if __name__ == "__main__":
    main()
