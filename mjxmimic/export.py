"""Export a trained policy for a robot: ``policy.onnx`` and ``policy.json``.

    python -m mjxmimic.export runs/k1_track-20261129-1200 --out deploy/k1_walk [--best]

``policy.onnx`` maps the raw actor observation ``obs`` [B, actor_obs_size] (any batch) to the
deterministic mean action ``action`` [B, J] in the policy's normalised space; the observation
normaliser ((obs − mean)/std clipped to ±obs_clip) is inside the graph. ``policy.json`` says
everything else a controller needs (see :func:`policy_metadata`): the robot's joints in order,
the PD gains and effort limits the run trained with, the action rule, the policy rate, the
observation layout and, for tracking runs, the reference clip per control step; for ball-kick
runs the task (ball, episode layout, target radius), the start pose and the fall rule.
The graph is built by jax2onnx (``pip install 'mjxmimic[deploy]'``) from the same jax functions
the trainer calls, so it cannot drift from them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
ONNX_INPUT, ONNX_OUTPUT = "obs", "action"
# ONNX opset 17 (onnxruntime >= 1.13): the graph needs nothing newer (Gemm, Clip, Exp, Where),
# and robot computers often carry an older onnxruntime than jax2onnx's default opset wants.
ONNX_OPSET = 17
__all__ = ["FORMAT_VERSION", "ONNX_OPSET", "load_run", "actor_obs_layout", "policy_onnx", "policy_metadata", "export",
           "dumps_policy_json", "loads_policy_json", "load_policy_json", "main"]


def load_run(run_dir: Path, best: bool = False, step=None):
    """(env, params, agent_cfg, trainer, train_state) of a run directory, as ``play`` restores it but
    with the training config (its observation noise and start settings are what policy.json records)."""
    from mjxmimic.learning import restore_train_state
    from mjxmimic.train import build

    env, params, agent_cfg, trainer = build(Path(run_dir))
    ts = restore_train_state(str(Path(run_dir).resolve() / "checkpoints"), trainer.abstract_state(), step,
                             best=best)
    return env, params, agent_cfg, trainer, ts


def actor_obs_layout(env) -> list[dict]:
    """``env.actor_obs_layout()`` (one frame) as plain dicts (name, size, noise), checked against the
    actor's size: ``history`` frames of it."""
    from mjxmimic.learning.ppo import actor_obs_size
    size = actor_obs_size(env)
    layout = [{"name": str(t["name"]), "size": int(t["size"]), "noise": float(t.get("noise", 0.0))}
              for t in env.actor_obs_layout()]
    H = int(env.cfg.obs_history)
    if H * sum(t["size"] for t in layout) != size:
        raise ValueError(f"observation layout sizes {[t['size'] for t in layout]} x {H} frames do not sum to the "
                         f"actor's {size}")
    return layout


def policy_onnx(trainer, policy_params, obs_size: int, obs_clip: float):
    """ONNX ModelProto of obs [B, obs_size] -> mean normalised action [B, J], normaliser inside:
    the trainer's own ``actor_input`` and actor module, converted by jax2onnx."""
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ImportError("export needs jax2onnx, onnx and onnxruntime: pip install 'mjxmimic[deploy]'") from None
    from mjxmimic.learning.ppo import actor_input
    pp = policy_params

    def mean_action(obs):
        return trainer.actor.apply(pp.actor_params, actor_input(pp.obs_norm, obs, obs_size, obs_clip))[0]
    return to_onnx(mean_action, [("B", obs_size)], model_name="mjxmimic_policy", opset=ONNX_OPSET, input_names=[ONNX_INPUT],
                   output_names=[ONNX_OUTPUT])


def _reference(env, params, num_steps: int) -> dict:
    """Each clip of a tracking run sampled as the env samples it, at control steps 0..num_steps
    (+ the future steps the actor reads): cyclic clips wrap, finished clips hold their last frame."""
    import jax
    import jax.numpy as jnp

    from mjxmimic.motions import lib as mlib
    lib = params.motion
    extra = max(env.future_steps, default=0)
    times = jnp.arange(num_steps + 1 + extra, dtype=jnp.float32) * env.control_dt
    ee = np.asarray(env.ee_ids)

    @jax.jit
    def clip(mid):
        f = mlib.sample(lib, jnp.full(times.shape, mid, jnp.int32), times)
        return (f.joint_pos, f.joint_vel, f.body_pos[:, env.anchor_id], f.body_rot[:, env.anchor_id],
                f.body_pos[:, ee, 2], f.qpos(lib)[0], f.qvel(lib)[0])
    clips = []
    names = list(lib.motion_names)
    for i in range(len(np.asarray(lib.length))):
        jp, jv, ap, ar, ez, q0, v0 = (np.asarray(x, np.float32) for x in clip(i))
        length = float(np.asarray(lib.length)[i])
        loop = bool(np.asarray(lib.wrap)[i])
        clips.append({"name": str(names[i]) if i < len(names) else f"clip{i}", "loop": loop, "length": length,
                      # a non-looping clip ends (success) at this control step
                      "end_step": None if loop else int(np.ceil((length - 1e-4) / env.control_dt)),
                      "joint_pos": jp, "joint_vel": jv, "anchor_pos": ap, "anchor_rot": ar, "ee_z": ez,
                      "qpos0": q0, "qvel0": v0})
    return {"anchor_body": env.cfg.anchor_body, "ee_bodies": list(env.cfg.ee_bodies),
            "future_steps": list(env.future_steps), "clips": clips,
            "termination": {"anchor_height": float(params.term_anchor_height),
                            "gravity_z": float(params.term_gravity_z), "ee_height": float(params.term_ee_height)}}


def policy_metadata(env, params, agent_cfg, layout: list[dict], iteration: int = 0) -> dict:
    """What policy.json holds (numpy arrays; :func:`export` writes them as lists).

    Gains, effort limits and armature are read from the model the run simulated (its profile).
    Action: the policy outputs a; the PD target is ``offset + scale·a`` (``action.rule``). Tracking
    runs: offset = the default pose and the target is not clipped by the env (``mode:
    default_plus_scale``); MimicKit-style runs map a ∈ [-1, 1] onto [low, high] and clip the target
    to it (``mode: low_high``). MuJoCo clamps every target to ``target_range`` (the ctrlrange).
    Other runs than tracking: ``init_qpos`` (the robot's start pose, at rest) and ``fall`` (the
    geoms that may not touch the ground, :func:`mjxmimic.envs.char.fallen`); ball-kick runs:
    ``task`` (``KickEnv.task_spec``: ball, episode layout, target radius)."""
    from mjxmimic.envs.char import CharEnv
    from mjxmimic.learning.ppo import actor_obs_size, resolve_action_map
    r, m = env.robot, env.model
    nu = r.model.nu
    offset, scale = resolve_action_map(env, agent_cfg)
    default = np.asarray(env.default_joint_pos, np.float32)
    clipped = type(env).action_to_target is CharEnv.action_to_target
    action = {"size": int(env.action_size), "rule": "target = offset + scale * a", "offset": offset,
              "scale": scale, "mode": "low_high" if clipped else "default_plus_scale",
              "target_range": m.actuator_ctrlrange[:nu].astype(np.float32)}
    if clipped:
        action.update(low=np.asarray(env.action_low, np.float32), high=np.asarray(env.action_high, np.float32))
    meta = {
        "format_version": FORMAT_VERSION, "robot": r.name, "env_kind": type(env).__name__,
        "profile": env.cfg.profile, "iteration": int(iteration),
        "joint_names": list(r.joint_names), "default_joint_pos": default,
        "kp": m.actuator_gainprm[:nu, 0].astype(np.float32), "kd": (-m.actuator_biasprm[:nu, 2]).astype(np.float32),
        "effort": m.actuator_forcerange[:nu, 1].astype(np.float32), "armature": m.dof_armature[r.qvel_idx].astype(np.float32),
        "action": action, "control_freq": float(1.0 / env.control_dt), "sim_timestep": float(m.opt.timestep),
        "episode_length": float(env.cfg.episode_length), "max_episode_steps": int(env.max_episode_steps),
        # size: the ONNX input, history frames of the layout, newest first.
        "observation": {"size": actor_obs_size(env), "layout": layout, "history": int(env.cfg.obs_history),
                        "normalizer": "inside policy.onnx: clip((obs - mean) / std, -obs_clip, obs_clip)",
                        "obs_clip": float(agent_cfg.obs_clip)},
        "onnx": {"file": "policy.onnx", "input": ONNX_INPUT, "output": ONNX_OUTPUT, "opset": ONNX_OPSET},
    }
    if getattr(params, "motion", None) is not None and hasattr(env, "anchor_id"):
        meta["reference"] = _reference(env, params, int(env.max_episode_steps))
    else:
        # the character env's start pose and fall rule (tracking has its own terminations)
        meta["init_qpos"] = np.asarray(env.init_qpos, np.float32)
        meta["fall"] = {"enabled": bool(env.cfg.enable_early_termination),
                        "geoms": [m.geom(int(g)).name for g in env.fall_geom_ids],
                        "ground_contact_height": float(params.ground_contact_height)}
    if hasattr(env, "task_spec"):
        meta["task"] = env.task_spec()
    rc = env.cfg.randomize
    if rc.active:
        # What the policy was trained to tolerate; sim2sim's default delay is the middle of it.
        meta["randomize"] = {k: list(v) for k, v in dataclasses.asdict(rc).items()
                             if v is not None and k not in ("ramp", "ramp_adaptive", "ramp_signal", "com_body")
                             and not (k == "push_vel" and rc.push_interval is None)}
        if rc.delay is not None:
            meta["randomize"]["delay_s"] = [d * float(m.opt.timestep) for d in rc.delay]
    return meta


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


# Keys whose values load back as float32 arrays (the rest stays as JSON gives it).
_ARRAYS = {"default_joint_pos", "kp", "kd", "effort", "armature", "offset", "scale", "target_range", "low", "high",
           "joint_pos", "joint_vel", "anchor_pos", "anchor_rot", "ee_z", "qpos0", "qvel0", "init_qpos"}


def _arrays(x, key=None):
    if isinstance(x, dict):
        return {k: _arrays(v, k) for k, v in x.items()}
    if key in _ARRAYS and x is not None:
        return np.asarray(x, np.float32)
    if isinstance(x, list):
        return [_arrays(v) for v in x]
    return x


def dumps_policy_json(meta: dict) -> str:
    """policy.json's text for :func:`policy_metadata`'s dict (arrays as lists)."""
    return json.dumps(_jsonable(meta), indent=1)


def loads_policy_json(text: str) -> dict:
    """policy.json's dict with its numeric fields as float32 arrays (the exporter's numbers, exactly)."""
    return _arrays(json.loads(text))


def load_policy_json(path) -> dict:
    """:func:`loads_policy_json` of a file, checking its format version."""
    meta = loads_policy_json(Path(path).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {meta.get('format_version')!r}, this reader knows {FORMAT_VERSION}")
    return meta


def export(run_dir, out, best: bool = False, step=None) -> tuple[Path, Path]:
    """Write ``out/policy.onnx`` and ``out/policy.json`` for a run; returns their paths."""
    import onnx

    from mjxmimic.io_util import atomic_write
    from mjxmimic.learning import policy_params
    from mjxmimic.learning.ppo import actor_obs_size
    env, params, agent_cfg, trainer, ts = load_run(Path(run_dir), best, step)
    layout = actor_obs_layout(env)
    model = policy_onnx(trainer, policy_params(ts), actor_obs_size(env), agent_cfg.obs_clip)
    meta = policy_metadata(env, params, agent_cfg, layout, int(ts.iteration))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, json_path = out / "policy.onnx", out / "policy.json"
    atomic_write(onnx_path, model.SerializeToString())
    onnx.checker.check_model(str(onnx_path))
    atomic_write(json_path, dumps_policy_json(meta))
    return onnx_path, json_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a run directory written by python -m mjxmimic.train")
    ap.add_argument("--out", required=True, help="folder for policy.onnx and policy.json")
    ap.add_argument("--best", action="store_true", help="the best checkpoint (a run trained with --keep-best)")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (None: the latest)")
    args = ap.parse_args(argv)
    from mjxmimic.quiet import import_mjx
    import_mjx()
    from mjxmimic.envs.registry import ConfigError
    from mjxmimic.learning import CheckpointError
    if not (Path(args.run_dir) / "config.yaml").is_file():
        print(f"error: {args.run_dir} is not a run directory (no config.yaml)", file=sys.stderr)
        return 2
    try:
        onnx_path, json_path = export(args.run_dir, args.out, args.best, args.step)
    except (ConfigError, CheckpointError, FileNotFoundError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {onnx_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
