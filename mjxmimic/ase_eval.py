"""What an ASE policy does with each latent: N fixed latents, one episode each from the same start.

    from mjxmimic.ase_eval import HOLD_LATENT_OVERRIDES, evaluate_latents
    env, params, _ = make_env(run_dir / "config.yaml", HOLD_LATENT_OVERRIDES)
    res = evaluate_latents(env, params, policy_fn, jax.random.PRNGKey(1), num_latents=4)
    res["latents"][i]       # mean root speed, yaw rate, distance, fell, for latent i
    res["qpos"]             # [N, T, nq], for view.render_rows

(``python -m mjxmimic.play RUN --latents 4`` runs this and writes ``play_latents.png``.)

The latent is held by the env's config, not by the rollout: ``HOLD_LATENT_OVERRIDES`` puts the
next redraw 10^9 s away and starts every episode from the default pose at rest (the ASE env's
other start, a random reference frame, would differ per key). :func:`reset_with_latent` then
replaces the z that ``reset`` drew by the chosen one, in the info and in the obs.

An episode ends at a fall (or the NaN guard) or at the env's time limit; after its end the
rollout holds the last state, so the trajectories keep their length. Per latent: mean root speed
(horizontal path length / duration, m/s), mean yaw rate (net heading change / duration, rad/s,
positive to the left), distance (start to end, horizontal, m), fell (1.0 or 0.0). Over all of them:
the fall rate, and the diversity: the mean over pairs of latents of the RMS difference of their
joint positions over the episode (rad).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mjxmimic.envs.ase import ASEEnv, sample_latent
from mjxmimic.math import heading

__all__ = ["HOLD_LATENT_OVERRIDES", "reset_with_latent", "latent_rollouts", "latent_metrics", "evaluate_latents"]

HOLD_LATENT_OVERRIDES = {"env.latent_time_min": 1e9, "env.latent_time_max": 1e9, "env.default_reset_prob": 1.0}


def reset_with_latent(env: ASEEnv, params, key, z):
    """``env.reset(params, key)`` with the latent ``z`` [latent_size] in place of the drawn one."""
    s = env.reset(params, key)
    obs = env.with_latent(s.obs, z)
    return s.replace(obs=obs, terminal_obs=obs, info={**s.info, "latent": z})


def latent_rollouts(env: ASEEnv, params, policy_fn, key, latents, num_steps: int):
    """One episode per latent of ``latents`` [N, latent_size], all from ``reset`` with the same
    ``key``, ``policy_fn`` ([B, obs] -> [B, action]) choosing the actions. Returns (qpos
    [N, num_steps + 1, nq], the obs's latent [N, num_steps + 1, latent_size], alive [N, num_steps + 1]:
    the episode has not ended, fell [N]: it ended by a fall). Jit it."""
    def one(z):
        s0 = reset_with_latent(env, params, key, z)

        def body(carry, _):
            s, alive = carry
            s1 = env.step(params, s, policy_fn(s.obs[None])[0])
            ended = alive & s1.done
            fell = ended & ~s1.truncated          # a timeout is truncated, a fall or the NaN guard is not
            alive = alive & ~s1.done
            # after the end, hold the last state (the auto-reset's next episode is left out)
            s = jax.tree_util.tree_map(lambda a, b: jnp.where(alive, a, b), s1, s)
            return (s, alive), (s.physics.qpos, env.latent(s.obs), alive, fell)

        _, (q, zs, alive, fell) = jax.lax.scan(body, (s0, jnp.ones((), bool)), None, length=num_steps)
        cat = lambda first, rest: jnp.concatenate([first[None], rest])   # noqa: E731
        return (cat(s0.physics.qpos, q), cat(env.latent(s0.obs), zs), cat(jnp.ones((), bool), alive),
                jnp.any(fell))

    return jax.vmap(one)(latents)


def latent_metrics(qpos, alive, fell, joint_idx, dt: float) -> dict:
    """The figures of :func:`latent_rollouts`' output (numpy): ``joint_idx`` the robot's joint
    entries of qpos (its free root is qpos[:7]), ``dt`` the control step (s). Returns
    {"latents": [per-latent dict], "fall_rate", "diversity_rad" (None for one latent)}."""
    qpos, alive, fell = np.asarray(qpos, np.float64), np.asarray(alive), np.asarray(fell)
    yaws = np.asarray(heading(qpos[:, :, 3:7]), np.float64)   # [N, T], the root's heading
    per = []
    for q, yaw, a, f in zip(qpos, yaws, alive, fell):
        n = int(a.sum())                       # states of the episode (the first included)
        dur = max(n - 1, 1) * dt
        xy, yaw = q[:n, :2], np.unwrap(yaw[:n])
        per.append({"mean_root_speed": float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum() / dur),
                    "mean_yaw_rate": float((yaw[-1] - yaw[0]) / dur),
                    "distance": float(np.linalg.norm(xy[-1] - xy[0])),
                    "duration_s": float((n - 1) * dt), "fell": float(f)})
    joints = qpos[:, :, joint_idx]
    pairs = [(i, j) for i in range(len(joints)) for j in range(i + 1, len(joints))]
    div = [float(np.sqrt(np.mean((joints[i] - joints[j]) ** 2))) for i, j in pairs]
    return {"latents": per, "fall_rate": float(np.mean(fell)), "diversity_rad": float(np.mean(div)) if div else None}


def evaluate_latents(env: ASEEnv, params, policy_fn, key, num_latents: int, num_steps: int | None = None) -> dict:
    """:func:`latent_metrics` of ``num_latents`` latents drawn from ``key`` (uniform on the
    sphere), one episode each of at most ``num_steps`` (default: the env's episode) from the same
    start (also from ``key``), plus "z" [N, latent_size] and "qpos" [N, T, model nq]. ``env``
    should be built with :data:`HOLD_LATENT_OVERRIDES` (checked)."""
    if not isinstance(env, ASEEnv):
        raise ValueError(f"latents need an ASE env, got {type(env).__name__}")
    steps = env.max_episode_steps if num_steps is None else int(num_steps)
    if env.cfg.latent_time_min < steps * env.control_dt:
        raise ValueError(f"env.latent_time_min {env.cfg.latent_time_min} s would redraw the latent within the "
                         f"{steps * env.control_dt:g} s episode: build the env with HOLD_LATENT_OVERRIDES")
    k_z, k_start = jax.random.split(key)
    z = sample_latent(k_z, env.latent_size, (num_latents,))
    run = jax.jit(lambda z: latent_rollouts(env, params, policy_fn, k_start, z, steps))
    qpos, _, alive, fell = (np.asarray(x) for x in run(z))
    out = latent_metrics(qpos, alive, fell, np.asarray(env.robot.qpos_idx), env.control_dt)
    return {**out, "z": np.asarray(z), "qpos": qpos}
