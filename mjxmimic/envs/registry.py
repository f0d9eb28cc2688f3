"""Named experiment configs (YAML) -> (env, env params, agent config).

    env, params, agent_cfg = make_env("g1_walk", {"env.num_envs": 1024, "agent.actor_lr": 5e-5})
    trainer = make_trainer(env, params, agent_cfg)          # mjxmimic.learning

A config file has two sections, a one-line description and, optionally, a base::

    description: "DeepMimic: G1 tracks a walking clip"   # shown by list_configs / train --list-envs
    defaults: _deepmimic       # a base config: configs/_deepmimic.yaml (or beside this file)
    env:
      name: deepmimic          # env kind (see ENV_KINDS / register_env)
      robot: g1
      motion_file: motions/g1/walk.npz   # a clip or a dataset YAML (weighted clips)
      num_envs: 4096           # parallel envs (copied into the agent config)
      ...                      # fields of the kind's config dataclass (e.g. DeepMimicConfig)
    agent:
      name: ppo                # learner config class (see AGENT_KINDS)
      ...                      # fields of that class (PPOConfig / AMPConfig)

Inheritance: ``defaults: <name>`` (or a list of names, merged left to right: a later base
wins) merges the named base under this file (recursively:
mappings merge key by key, the child's value wins, lists are replaced whole); a base may
itself have ``defaults:``. Bases are the files named ``_*.yaml``; :func:`list_configs`
leaves them out. :func:`read_config` returns the merged, self-contained mapping (no
``defaults:`` key), which is what a run directory should save.

``name_or_path``: a path to a YAML file, or a name resolved to ``configs/<name>.yaml``
in the repo. Relative paths inside a config (motion_file) are relative to the repo
root; if nothing is there, to the config file's folder.

Validation: unknown keys and wrong types raise :class:`ConfigError` naming the file and
key. Booleans must be YAML booleans, ints integers; floats accept integers and numeric
strings (PyYAML reads ``1e-4`` as a string). Lists become tuples.

Env section conveniences: ``joint_err_w`` (DeepMimic) may be a list in robot joint order
or a mapping ``{joint name: weight}`` (unlisted joints 1.0). Agent section aliases:
``actor_lr``, ``critic_lr``, ``disc_lr`` set the learning rate of the matching optimiser.

Overrides: ``{"env.key": value, "agent.key": value, "agent.actor_optimizer.type": "adam"}``;
string values are parsed as YAML (so CLI ``key=value`` strings work, see
:func:`parse_overrides`). A nested mapping (e.g. ``actor_optimizer: {learning_rate: 1e-5}``)
overrides the class default of that field key by key.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import yaml

from mjxmimic.envs.char import CharConfig, CharEnv
from mjxmimic.envs.deepmimic import DeepMimicConfig, DeepMimicEnv
from mjxmimic.paths import CONFIGS_DIR, REPO_ROOT

__all__ = ["ConfigError", "make_env", "load_config", "read_config", "list_configs", "register_env",
           "register_agent", "parse_overrides", "ENV_KINDS", "AGENT_KINDS", "CONFIGS_DIR", "EnvKind",
           "resolve_path", "apply_overrides"]

_TOP_KEYS = ("defaults", "description", "env", "agent")


class ConfigError(ValueError):
    """A config file or override is malformed."""


@dataclasses.dataclass(frozen=True)
class EnvKind:
    """How to build one kind of env from its config section.

    config_cls: frozen dataclass of the env's static settings.
    build: (config, motion_lib or None) -> (env, params).
    needs_motion: whether ``motion_file`` is required.
    eval_overrides: how ``play`` evaluates it (e.g. tracking: from the first frame, no noise).
    """

    config_cls: type
    build: Callable[[Any, Any], tuple]
    needs_motion: bool = True
    # Overrides that turn a training config of this kind into its evaluation config (``play``).
    eval_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _build(cfg, motion, env_cls):
    env = env_cls(cfg)
    return env, env.default_params(motion)


ENV_KINDS: dict[str, EnvKind] = {
    "char": EnvKind(CharConfig, functools.partial(_build, env_cls=CharEnv), needs_motion=False),
    "deepmimic": EnvKind(DeepMimicConfig, functools.partial(_build, env_cls=DeepMimicEnv), needs_motion=True),
}


def _agent_kinds() -> dict:
    from mjxmimic.learning.add import ADDConfig
    from mjxmimic.learning.amp import AMPConfig
    from mjxmimic.learning.ase import ASEConfig
    from mjxmimic.learning.ppo import PPOConfig
    return {"ppo": PPOConfig, "amp": AMPConfig, "add": ADDConfig, "ase": ASEConfig}


AGENT_KINDS: dict[str, type] = {}  # filled lazily (avoids importing the learner at import time)
_AGENT_ALIASES = {"actor_lr": ("actor_optimizer", "learning_rate"), "critic_lr": ("critic_optimizer", "learning_rate"),
                  "disc_lr": ("disc_optimizer", "learning_rate")}
_ENV_EXTRA = ("name", "motion_file", "num_envs")


def register_env(name: str, config_cls: type, build: Callable, needs_motion: bool = True,
                 eval_overrides: Optional[Mapping[str, Any]] = None):
    """Add an env kind usable as ``env: {name: <name>}`` in configs."""
    ENV_KINDS[name] = EnvKind(config_cls, build, needs_motion, dict(eval_overrides or {}))


def register_agent(name: str, config_cls: type):
    _agents()[name] = config_cls


def _agents() -> dict:
    if not AGENT_KINDS:
        AGENT_KINDS.update(_agent_kinds())
    return AGENT_KINDS


# ---------------------------------------------------------------------------------------
# typed conversion
# ---------------------------------------------------------------------------------------
def _coerce(v, tp, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return v
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if v is None and type(None) in args:
            return None
        errs = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(v, a, where)
            except ConfigError as e:
                errs.append(str(e))
        raise ConfigError(errs[0] if len(errs) == 1 else f"{where}: {v!r} matches none of {tp}")
    if tp is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{where}: expected true/false, got {v!r}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected an integer, got {v!r}")
        return v
    if tp is float:
        if isinstance(v, bool):
            raise ConfigError(f"{where}: expected a number, got {v!r}")
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {v!r}")
    if tp is str:
        if not isinstance(v, str):
            raise ConfigError(f"{where}: expected a string, got {v!r}")
        return v
    if tp in (tuple, list) or origin in (tuple, list, Sequence, typing.Sequence) or (
            origin is not None and getattr(origin, "__name__", "") == "Sequence"):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {v!r}")
        item = args[0] if args and args[-1] is not Ellipsis else (args[0] if args else Any)
        if origin is tuple and args and len(args) > 1 and args[-1] is not Ellipsis:
            if len(args) != len(v):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(v)}")
            return tuple(_coerce(x, a, f"{where}[{i}]") for i, (x, a) in enumerate(zip(v, args)))
        return tuple(_coerce(x, item, f"{where}[{i}]") for i, x in enumerate(v))
    if dataclasses.is_dataclass(tp):
        if isinstance(v, tp):
            return v
        if not isinstance(v, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {v!r}")
        return _build_dataclass(tp, v, where)
    raise ConfigError(f"{where}: unsupported field type {tp}")


def _field_types(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _build_dataclass(cls, raw: Mapping, where: str, extra_ok: Sequence[str] = ()):
    types = _field_types(cls)
    unknown = [k for k in raw if k not in types and k not in extra_ok]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(set(types) | set(extra_ok))}")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kw = {}
    for k, v in raw.items():
        if k not in types:
            continue
        d = defaults.get(k)
        if isinstance(v, Mapping) and dataclasses.is_dataclass(d) and not isinstance(d, type):
            # A nested section overrides the default field by field.
            v = {**{f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.init}, **v}
        kw[k] = _coerce(v, types[k], f"{where}.{k}")
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------
def resolve_path(p: str, config_path: Optional[Path]) -> Path:
    """Absolute as is; else the repo root, then the config file's folder."""
    path = Path(p)
    if path.is_absolute():
        return path
    tried = [REPO_ROOT / path]
    if config_path is not None:
        tried.append(Path(config_path).parent / path)
    for t in tried:
        if t.exists():
            return t
    raise ConfigError(f"{config_path or '<config>'}: file '{p}' not found (tried {', '.join(map(str, tried))})")


def _runnable(p: Path) -> bool:
    return not p.stem.startswith("_")   # _<name>.yaml: a base config, only used through ``defaults:``


def _config_file(name_or_path) -> Path:
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        return p
    f = CONFIGS_DIR / f"{name_or_path}.yaml"
    if not f.exists():
        known = [n for n, _ in list_configs()] if CONFIGS_DIR.exists() else []
        raise ConfigError(f"no config named '{name_or_path}' (looked for {f}); known: {known}")
    return f


def _defaults_file(name, child: Path) -> Path:
    """A ``defaults:`` value: a name (``_amp``: ``<child's folder>/_amp.yaml``, else
    ``configs/_amp.yaml``) or a path ending in .yaml (relative to the child's folder)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{child}: 'defaults' must be the name of a base config, got {name!r}")
    p = Path(name)
    if p.suffix.lower() in (".yaml", ".yml"):
        tried = [p if p.is_absolute() else child.parent / p]
    else:
        tried = [child.parent / f"{name}.yaml", CONFIGS_DIR / f"{name}.yaml"]
    for t in tried:
        if t.exists():
            return t
    raise ConfigError(f"{child}: defaults '{name}' not found (tried {', '.join(map(str, tried))})")


def _merge(base: Mapping, child: Mapping) -> dict:
    """Recursive mapping merge: the child's value wins; mappings merge key by key, anything
    else (lists included) is replaced whole."""
    out = dict(base)
    for k, v in child.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _read_chain(path: Path, seen: tuple) -> tuple[dict, tuple]:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'defaults' loop through {' -> '.join(str(p) for p in seen + (path.resolve(),))}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'env' and 'agent' sections")
    unknown = set(raw) - set(_TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected {list(_TOP_KEYS)}")
    desc = raw.get("description")
    if desc is not None and (not isinstance(desc, str) or "\n" in desc.strip()):
        raise ConfigError(f"{path}: 'description' must be one line of text")
    for sec in ("env", "agent"):
        if raw.get(sec) is not None and not isinstance(raw[sec], dict):
            raise ConfigError(f"{path}: '{sec}' must be a mapping")
    if "defaults" not in raw:
        return raw, (path,)
    names = raw.pop("defaults")
    merged, chain = {}, (path,)
    # A list of bases merges left to right (a later base wins), then the file itself.
    for name in (names if isinstance(names, list) and names else [names]):
        base, sub = _read_chain(_defaults_file(name, path), seen + (path.resolve(),))
        merged, chain = _merge(merged, base), chain + sub
    return _merge(merged, raw), chain


def read_config(name_or_path) -> dict:
    """A config file's mapping with its ``defaults:`` chain merged in (recursively, the
    child's values winning) and the ``defaults`` key gone: a self-contained config, what a
    run directory saves. Not validated; :func:`load_config` does that."""
    return _read_chain(_config_file(name_or_path), ())[0]


def list_configs() -> list[tuple[str, str]]:
    """(name, description) of every runnable config in ``configs/`` (base files, named
    ``_*.yaml``, left out), sorted by name."""
    out = []
    for p in sorted(CONFIGS_DIR.glob("*.yaml")):
        if _runnable(p):
            out.append((p.stem, str(read_config(p).get("description") or "").strip()))
    return out


def parse_overrides(items: Sequence[str]) -> dict:
    """["env.num_envs=8", "agent.actor_lr=1e-5"] -> {"env.num_envs": "8", ...} (values parsed later)."""
    out = {}
    for it in items:
        if "=" not in it:
            raise ConfigError(f"override '{it}' is not key=value")
        k, v = it.split("=", 1)
        out[k.strip()] = v
    return out


def apply_overrides(raw: dict, overrides: Mapping[str, Any]) -> dict:
    """A copy of a raw config dict with ``{'env.key': value}`` overrides applied (strings parsed as YAML)."""
    raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for key, val in (overrides or {}).items():
        parts = key.split(".")
        if len(parts) < 2 or parts[0] not in ("env", "agent"):
            raise ConfigError(f"override '{key}': keys look like 'env.<field>' or 'agent.<field>[.<sub>]'")
        if isinstance(val, str):
            try:
                val = yaml.safe_load(val) if val.strip() else val
            except yaml.YAMLError as e:
                raise ConfigError(f"override '{key}': cannot parse {val!r}: {e}") from None
        node = raw.setdefault(parts[0], {})
        for p in parts[1:-1]:
            if p in _AGENT_ALIASES and parts[0] == "agent":
                raise ConfigError(f"override '{key}': '{p}' is a scalar alias")
            sub = node.get(p)
            if sub is None:
                sub = {}
            elif not isinstance(sub, Mapping):
                raise ConfigError(f"override '{key}': '{p}' is not a mapping")
            node[p] = dict(sub)
            node = node[p]
        node[parts[-1]] = val
    return raw


def load_config(name_or_path, overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Read, override and validate a config; returns {'path', 'kind', 'env_cfg', 'motion_file',
    'num_envs', 'agent_cfg'} without building anything heavy."""
    file = _config_file(name_or_path)
    raw, chain = _read_chain(file, ())
    # Errors name the file and, for an inheriting config, the files its values came from.
    path = file if len(chain) == 1 else f"{file} (defaults: {', '.join(p.name for p in chain[1:])})"
    raw = {k: v for k, v in raw.items() if k in ("env", "agent")}
    raw = apply_overrides(raw, overrides)
    env_raw, agent_raw = raw.get("env"), raw.get("agent", {}) or {}
    if not isinstance(env_raw, dict):
        raise ConfigError(f"{path}: 'env' must be a mapping")
    if not isinstance(agent_raw, dict):
        raise ConfigError(f"{path}: 'agent' must be a mapping")

    # ---- env section
    env_raw = dict(env_raw)
    kind_name = env_raw.get("name", "deepmimic")
    if kind_name not in ENV_KINDS:
        raise ConfigError(f"{path}: env.name '{kind_name}' unknown; known: {sorted(ENV_KINDS)}")
    kind = ENV_KINDS[kind_name]
    num_envs = _coerce(env_raw.get("num_envs", 4096), int, f"{path}: env.num_envs")
    if num_envs < 1:
        raise ConfigError(f"{path}: env.num_envs must be >= 1")
    motion_file = env_raw.get("motion_file")
    if motion_file is not None:
        motion_file = resolve_path(_coerce(motion_file, str, f"{path}: env.motion_file"), file)
    elif kind.needs_motion:
        raise ConfigError(f"{path}: env.motion_file is required for env '{kind_name}'")
    jw = env_raw.get("joint_err_w")
    if isinstance(jw, Mapping):
        env_raw["joint_err_w"] = _joint_weights(jw, env_raw.get("robot", "g1"), f"{path}: env.joint_err_w")
    env_cfg = _build_dataclass(kind.config_cls, {k: v for k, v in env_raw.items() if k not in _ENV_EXTRA},
                               f"{path}: env", extra_ok=_ENV_EXTRA)

    # ---- agent section
    agent_raw = dict(agent_raw)
    agent_name = agent_raw.pop("name", "ppo")
    agents = _agents()
    if agent_name not in agents:
        raise ConfigError(f"{path}: agent.name '{agent_name}' unknown; known: {sorted(agents)}")
    if "num_envs" in agent_raw:
        raise ConfigError(f"{path}: set num_envs in the env section (env.num_envs), not in agent")
    for alias, (opt, field) in _AGENT_ALIASES.items():
        if alias in agent_raw:
            lr = agent_raw.pop(alias)
            sub = agent_raw.get(opt) or {}
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{path}: agent.{opt} must be a mapping")
            agent_raw[opt] = {**sub, field: lr}
    agent_cls = agents[agent_name]
    agent_raw["num_envs"] = num_envs
    agent_cfg = _build_dataclass(agent_cls, agent_raw, f"{path}: agent")
    return {"path": file, "kind": kind_name, "env_cfg": env_cfg, "motion_file": motion_file,
            "num_envs": num_envs, "agent_cfg": agent_cfg}


def _joint_weights(mapping: Mapping, robot_name, where: str) -> tuple:
    from mjxmimic.robots import load_robot
    robot = load_robot(robot_name)
    unknown = [k for k in mapping if k not in robot.joint_names]
    if unknown:
        raise ConfigError(f"{where}: unknown joint(s) {unknown}; {robot_name} joints: {list(robot.joint_names)}")
    return tuple(float(_coerce(mapping.get(n, 1.0), float, f"{where}.{n}")) for n in robot.joint_names)


def make_env(name_or_path, overrides: Optional[Mapping[str, Any]] = None):
    """Build (env, env_params, agent_cfg) from a named config or a YAML path."""
    c = load_config(name_or_path, overrides)
    kind = ENV_KINDS[c["kind"]]
    motion = None
    if c["motion_file"] is not None:
        from mjxmimic.motions.lib import load_motion_lib
        try:
            motion = load_motion_lib(c["motion_file"], c["env_cfg"].robot)
        except ValueError as e:
            raise ConfigError(f"{c['path']}: env.motion_file: {e}") from None
    try:
        env, params = kind.build(c["env_cfg"], motion)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{c['path']}: env: {e}") from None
    return env, params, c["agent_cfg"]


# ---------------------------------------------------------------------------------------
# AMP, task (steering, location), ball (kick, dribble) and ASE envs: mjxmimic/envs/amp.py, tasks.py,
# kick.py, dribble.py, ase.py.
# Style motions come from env.motion_file or, without it, env.motion_files (several datasets).
# ---------------------------------------------------------------------------------------
def _register_amp_envs():
    from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig, make_amp_env
    from mjxmimic.envs.ase import ASEEnv, ASEEnvConfig
    from mjxmimic.envs.dribble import DribbleConfig, DribbleEnv
    from mjxmimic.envs.kick import KickConfig, KickEnv
    from mjxmimic.envs.tasks import LocationConfig, LocationEnv, SteeringConfig, SteeringEnv

    for name, config_cls, env_cls in (("amp", AMPEnvConfig, AMPEnv), ("steering", SteeringConfig, SteeringEnv),
                                      ("location", LocationConfig, LocationEnv), ("kick", KickConfig, KickEnv),
                                      ("dribble", DribbleConfig, DribbleEnv), ("ase", ASEEnvConfig, ASEEnv)):
        register_env(name, config_cls, functools.partial(make_amp_env, env_cls=env_cls), needs_motion=False)


_register_amp_envs()


def _register_tracking_env():
    from mjxmimic.envs.tracking import EVAL_OVERRIDES, TrackingConfig, make_tracking_env
    register_env("tracking", TrackingConfig, make_tracking_env, needs_motion=True, eval_overrides=EVAL_OVERRIDES)


_register_tracking_env()


def _register_add_env():
    # ADD's env settings are DeepMimic's (MimicKit's add_g1_env = deepmimic_g1_env).
    from mjxmimic.envs.add import ADDEnv
    register_env("add", DeepMimicConfig, functools.partial(_build, env_cls=ADDEnv), needs_motion=True)


_register_add_env()


def _register_other_envs():
    # MimicKit's static_objects, view_motion and char_dof_test envs.
    from mjxmimic.envs.dof_test import DofTestConfig, DofTestEnv
    from mjxmimic.envs.static_objects import StaticObjectsConfig, StaticObjectsEnv
    from mjxmimic.envs.view_motion import ViewMotionConfig, make_view_motion_env
    register_env("static_objects", StaticObjectsConfig, functools.partial(_build, env_cls=StaticObjectsEnv))
    register_env("view_motion", ViewMotionConfig, make_view_motion_env, needs_motion=True)
    register_env("dof_test", DofTestConfig, functools.partial(_build, env_cls=DofTestEnv), needs_motion=False)


_register_other_envs()


def _register_ase_steer_env():
    # The high-level steering policy over a frozen ASE run (env.low_level_run), loaded when built.
    from mjxmimic.envs.ase_steer import ASESteerConfig, make_ase_steer_env
    register_env("ase_steer", ASESteerConfig, make_ase_steer_env, needs_motion=False)


_register_ase_steer_env()
