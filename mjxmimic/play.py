"""Evaluate a trained run: a metrics table and an mp4 of the policy.

    python -m mjxmimic.play runs/k1_walk-20261126-2300 [--episodes 256] [--no-video]
    python -m mjxmimic.play runs/k1_ase-20261130-0400 --latents 4   # ASE: what each latent does
    python -m mjxmimic.play runs/k1_kick_deploy-20261130-1100 --set env.randomize.push_interval=null

Deterministic actions (the policy mean), as MimicKit's test mode. The video shows the
policy on the left and, for envs that imitate a clip, the reference on the right; for the
ball tasks (kick, dribble) the scene (robot, ball, target marker) as simulated, and the table
adds their per-episode rates (``episode/success_rate``, ``episode/fall_rate``, dribble's
``episode/ball_loss_rate``, ...).

``--set env.KEY=VALUE`` evaluates the policy in a changed env (e.g. without pushes, with another
clip); only ``env.`` keys, and only ones that keep the policy's observation and action sizes.

``--latents N`` (ASE runs): N fixed latents drawn from ``--seed``, each held for one whole episode
from the same start (:mod:`mjxmimic.ase_eval`); a table per latent (root speed, yaw rate,
distance, fall), the fall rate and the latents' diversity, ``play_latents.png`` (a row of
stills per latent) and ``play_latents.mp4`` (the N side by side); ``--no-video``: the figures only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def evaluate(env, params, policy_fn, key, num_envs: int, num_episodes: int, max_steps: int) -> dict:
    """The shared episode evaluation (:func:`mjxmimic.learning.evaluation.evaluate_policy`), jitted,
    as Python floats."""
    import jax

    from mjxmimic.learning.evaluation import evaluate_policy

    run = jax.jit(lambda k: evaluate_policy(env, params, policy_fn, k, num_envs, num_episodes, max_steps))
    return {k: float(v) for k, v in run(key).items()}


def eval_overrides(run_dir: Path, perturbed: bool = False, nominal: bool = False) -> dict:
    """Config overrides ``play`` evaluates a run with: its env kind's evaluation overrides
    (tracking: first frame, no observation noise, the clip's end is a success; none for the
    others); ``perturbed`` keeps the training's reset noise; ``nominal`` adds
    :func:`nominal_overrides`."""
    from mjxmimic.envs.registry import ENV_KINDS, load_config

    cfg = load_config(run_dir / "config.yaml")
    overrides = dict(ENV_KINDS[cfg["kind"]].eval_overrides)
    if perturbed:  # the run's own reset noise
        overrides.pop("env.reset_noise_scale", None)
    if nominal:
        overrides.update(nominal_overrides(cfg["env_cfg"]))
    return overrides


def nominal_overrides(env_cfg) -> dict:
    """The env overrides of ``play --nominal``: the conditions ``sim2sim`` runs an export in by
    default, so that MJX and MuJoCo C can be compared on the same footing. Every randomised
    term off, no observation noise, and the actuator delay fixed at the middle of its trained
    range (rounded down to whole physics steps; sim2sim's default is the exact middle in ms).
    A policy that kicks only while perturbed shows it here (benchmarks/RESULTS.md)."""
    from mjxmimic.envs.randomize import TERMS

    out = {}
    r = getattr(env_cfg, "randomize", None)
    if r is not None:
        out = {f"env.randomize.{k}": None for k in TERMS if k != "delay" and getattr(r, k) is not None}
        if r.delay is not None:
            mid = (r.delay[0] + r.delay[1]) // 2
            out["env.randomize.delay"] = [mid, mid]
    if getattr(env_cfg, "obs_noise_scale", 0.0):
        out["env.obs_noise_scale"] = 0.0
    return out


def rollout_qpos(env, params, policy_fn, key, num_steps: int):
    """One env for ``num_steps``: simulated qpos, the reference qpos at the same motion time
    when the env has a MotionLib (both [T, nq]), and the task target ([T, 3]) or None."""
    import jax
    import jax.numpy as jnp

    from mjxmimic.motions import lib as mlib

    def ref_qpos(s):
        if getattr(params, "motion", None) is None or "motion_id" not in s.info:
            return s.physics.qpos[: env.robot.model.nq]
        f = mlib.sample(params.motion, s.info["motion_id"], env.motion_time(s.info))
        return f.qpos(params.motion)

    def run(key):
        s0 = env.reset(params, key)

        def target(s):
            return s.info["tar_pos"] if "tar_pos" in s.info else jnp.full((3,), jnp.nan)

        def body(s, _):
            s = env.step(params, s, policy_fn(s.obs[None])[0])
            return s, (s.physics.qpos, ref_qpos(s), target(s))
        _, out = jax.lax.scan(body, s0, None, length=num_steps)
        return tuple(jnp.concatenate([first[None], rest]) for first, rest in
                     zip((s0.physics.qpos, ref_qpos(s0), target(s0)), out))
    q, r, tar = (np.asarray(x) for x in jax.jit(run)(key))
    return q, r, (None if np.isnan(tar).all() else tar)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default (not train's: importing
    train imports MJX, which must wait until MUJOCO_GL is chosen)."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.play", description=__doc__,
                                 formatter_class=_HelpFormatter)
    ap.add_argument("run_dir", help="a run directory written by python -m mjxmimic.train")
    ap.add_argument("--episodes", type=int, default=256, help="episodes to evaluate (at least)")
    ap.add_argument("--num-envs", type=int, default=256, help="parallel envs for the evaluation")
    ap.add_argument("--seed", type=int, default=1, help="PRNG seed of the evaluation and the video episode")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (None: the latest)")
    ap.add_argument("--best", action="store_true", help="the best checkpoint (a run trained with --keep-best)")
    ap.add_argument("--no-video", action="store_true", help="metrics only, no mp4")
    ap.add_argument("--video-seconds", type=float, default=10.0, help="length of the video")
    ap.add_argument("--json", help="also write the metrics to this JSON file")
    ap.add_argument("--perturbed", action="store_true",
                    help="tracking runs: start each episode with the training's reset noise (default: exactly on "
                         "the first frame, so every episode is the same)")
    ap.add_argument("--nominal", action="store_true",
                    help="evaluate under sim2sim's default conditions: no randomisation or observation noise, the "
                         "actuator delay at the middle of its trained range (--set entries still apply on top)")
    ap.add_argument("--set", action="append", default=[], metavar="env.KEY=VALUE",
                    help="evaluate in a changed env, e.g. env.randomize.push_interval=null (repeatable)")
    ap.add_argument("--latents", type=int, default=None, metavar="N",
                    help="ASE runs: N fixed latents, one episode each; play_latents.png (and .mp4)")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.latents is not None and not _latents_run_ok(args, run_dir):
        return 2
    if not args.no_video:
        from mjxmimic.view import select_gl_backend
        backend = select_gl_backend()
        if backend is None:
            print("warning: no OpenGL backend (egl/osmesa) works here; skipping the video", file=sys.stderr)
            args.no_video = True
    from mjxmimic.quiet import import_mjx
    import_mjx()  # after MUJOCO_GL is chosen, before anything imports MJX: no warp-probe lines
    from mjxmimic.envs.registry import ConfigError, parse_overrides
    try:
        args.overrides = parse_overrides(args.set)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    not_env = [k for k in args.overrides if not k.startswith("env.")]
    if not_env:
        print(f"error: --set takes env.* keys only (the policy is trained); got {not_env}", file=sys.stderr)
        return 2
    if args.latents is not None:
        return _play_latents(args, run_dir)

    import jax

    loaded = load_policy(run_dir, args.step, args.best, perturbed=args.perturbed, extra=args.overrides,
                         nominal=args.nominal)
    if loaded is None:
        return 2
    env, params, agent_cfg, ts, policy_fn = loaded
    n = min(args.num_envs, args.episodes)
    m = evaluate(env, params, policy_fn, jax.random.PRNGKey(args.seed), n, args.episodes,
                 max_steps=20 * env.max_episode_steps)
    m["iteration"] = int(ts.iteration)
    if m.get("end/success", 0.0) > 0 and "end/time_to_success" in m:
        # the env reports time_to_success = 0 for episodes without success: average over successes
        m["time_to_success_given_success"] = m["end/time_to_success"] / m["end/success"]
    if hasattr(env, "episode_stats"):  # ball tasks: success / fall (/ ball-loss) rates per episode
        m.update({f"episode/{k}": v for k, v in env.episode_stats(m).items()})
    m["episode_length_s"] = m["episode_length"] * env.control_dt
    if "end/term_success" in m and "end/term_timeout" in m:
        # Tracking: the clip's end (success) or the episode limit (cyclic clips) without a termination.
        m["completion"] = m["end/term_success"] + m["end/term_timeout"]
    print("| metric | value |\n|---|---|")
    for k in sorted(m):
        print(f"| {k} | {m[k]:.4g} |")
    if args.json:
        Path(args.json).write_text(json.dumps(m, indent=1))
    if not args.no_video:
        steps = int(round(args.video_seconds / env.control_dt))
        q, r, tar = rollout_qpos(env, params, policy_fn, jax.random.PRNGKey(args.seed), steps)
        out = run_dir / "play.mp4"
        from mjxmimic.envs.deepmimic import DeepMimicEnv   # ADD's env is one too
        from mjxmimic.envs.tracking import TrackingEnv
        with_ref = getattr(params, "motion", None) is not None and isinstance(env, (DeepMimicEnv, TrackingEnv))
        from mjxmimic.view import render_rollout
        out = render_rollout(env.model, env.robot, q, out, 1.0 / env.control_dt, ref_qpos=r if with_ref else None,
                             target=tar, target_radius=getattr(env.cfg, "target_radius", 0.2))
        print(f"wrote {out} and {out.stem}_frames.png")
    return 0


def load_policy(run_dir: Path, step=None, best: bool = False, perturbed: bool = False, extra: dict | None = None,
                nominal: bool = False):
    """(env, params, agent config, train state, deterministic policy_fn) of the run's checkpoint
    (``step`` / ``best``), the env built with :func:`eval_overrides` (``perturbed``, ``nominal``)
    and ``extra``; None after printing the error (a missing or broken run directory, config or
    checkpoint)."""
    import jax

    from mjxmimic.envs.registry import ConfigError
    from mjxmimic.learning import CheckpointError, policy_params, restore_train_state
    from mjxmimic.paths import enable_compile_cache
    enable_compile_cache(jax.default_backend())
    from mjxmimic.train import build
    try:
        base = eval_overrides(run_dir, perturbed)
        changed = {**(eval_overrides(run_dir, perturbed, nominal) if nominal else base), **(extra or {})}
        env, params, agent_cfg, trainer = build(run_dir, overrides=changed)
        # The checkpoint's layout is the trained env's: an override may change the env state
        # (no pushes: no push timer), so restore into the run's own template; the policy
        # network is the same (overrides must keep the observation and action sizes).
        template = trainer if changed == base else build(run_dir, overrides=base)[3]
        ts = restore_train_state(str(run_dir.resolve() / "checkpoints"), template.abstract_state(), step,
                                 best=best)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    pp = policy_params(ts)

    def policy_fn(obs):
        return trainer.policy(pp, obs, deterministic=True)

    return env, params, agent_cfg, ts, policy_fn


def _latents_run_ok(args, run_dir: Path) -> bool:
    """``--latents N`` needs N >= 1 and an ASE run; False after printing why not."""
    from mjxmimic.envs.registry import ConfigError, load_config
    if args.latents < 1:
        print(f"error: --latents needs at least 1 latent, got {args.latents}", file=sys.stderr)
        return False
    try:
        kind = load_config(run_dir / "config.yaml")["kind"]
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return False
    if kind != "ase":
        print(f"error: --latents needs an ASE run (env kind 'ase'); {run_dir} is a '{kind}' run", file=sys.stderr)
        return False
    return True


def _play_latents(args, run_dir: Path) -> int:
    """``--latents N``: :func:`mjxmimic.ase_eval.evaluate_latents` of the run, its table, JSON and
    stills and mp4 (none with ``--no-video`` or without a working OpenGL backend)."""
    import jax

    from mjxmimic.ase_eval import HOLD_LATENT_OVERRIDES, evaluate_latents
    loaded = load_policy(run_dir, args.step, args.best, extra={**args.overrides, **HOLD_LATENT_OVERRIDES})
    if loaded is None:
        return 2
    env, params, _, ts, policy_fn = loaded
    res = evaluate_latents(env, params, policy_fn, jax.random.PRNGKey(args.seed), args.latents)
    print("| latent | root speed (m/s) | yaw rate (rad/s) | distance (m) | duration (s) | fell |\n|---|---|---|---|---|---|")
    for i, m in enumerate(res["latents"]):
        print(f"| {i} | {m['mean_root_speed']:.3f} | {m['mean_yaw_rate']:.3f} | {m['distance']:.2f} | "
              f"{m['duration_s']:.2f} | {m['fell']:.0f} |")
    div = res["diversity_rad"]
    print(f"fall rate {res['fall_rate']:.3g}, diversity {'n/a' if div is None else f'{div:.4g}'} rad "
          "(mean pairwise RMS joint-position difference)")
    if args.json:
        out = {k: res[k] for k in ("latents", "fall_rate", "diversity_rad")}
        out.update(iteration=int(ts.iteration), seed=args.seed, z=res["z"].tolist())
        Path(args.json).write_text(json.dumps(out, indent=1))
    if not args.no_video:
        from mjxmimic.view import render_rows
        png, mp4 = render_rows(env.model, env.robot, res["qpos"], run_dir / "play_latents.png",
                               video=run_dir / "play_latents.mp4",
                               fps=1.0 / env.control_dt)
        print(f"wrote {png} and {mp4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
