"""Config files: ``defaults:`` inheritance, descriptions, and the resolved values of every
shipped config against a snapshot (tests/data/resolved_configs.json) taken from the
self-contained configs before they were rewritten to state only what differs.

Regenerate the snapshot only for a deliberate change of a config's values:
``PYTHONPATH=. python tests/test_configs.py --write``.
"""
import dataclasses
import json
import sys
from pathlib import Path

import pytest
import yaml

from mjxmimic.envs import registry
from mjxmimic.envs.registry import ConfigError, list_configs, load_config
from mjxmimic import paths
from mjxmimic.paths import CONFIGS_DIR, REPO_ROOT

SNAPSHOT = Path(__file__).parent / "data" / "resolved_configs.json"


def resolved(name_or_path) -> dict:
    """A config's resolved values as plain JSON data (paths relative to the repo root)."""
    c = load_config(name_or_path)
    mf = c["motion_file"]
    return {"kind": c["kind"], "num_envs": c["num_envs"],
            "motion_file": None if mf is None else str(Path(mf).resolve().relative_to(REPO_ROOT)),
            "env_type": type(c["env_cfg"]).__name__, "env": dataclasses.asdict(c["env_cfg"]),
            "agent_type": type(c["agent_cfg"]).__name__, "agent": dataclasses.asdict(c["agent_cfg"])}


def _jsonable(x):
    return json.loads(json.dumps(x))


def runnable_names():
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else [])
def test_resolved_values_unchanged(name):
    assert _jsonable(resolved(name)) == json.loads(SNAPSHOT.read_text())[name]


def test_snapshot_covers_every_runnable_config():
    assert sorted(json.loads(SNAPSHOT.read_text())) == runnable_names()
    assert {"k1_walk", "k1_kick", "g1_track", "k1_track"} <= set(runnable_names())


def test_list_configs_names_and_descriptions():
    rows = list_configs()
    assert [n for n, _ in rows] == runnable_names()        # sorted, base files left out
    assert not any(n.startswith("_") for n, _ in rows)
    for n, d in rows:
        assert isinstance(d, str) and d.strip() and "\n" not in d, n
    assert dict(rows)["k1_kick"] == yaml.safe_load((CONFIGS_DIR / "k1_kick.yaml").read_text())["description"]


def test_kick_pair_differs_only_where_stated():
    k, g = resolved("k1_kick"), resolved("g1_kick")
    env_diff = {f for f in k["env"] if k["env"][f] != g["env"][f]}
    assert env_diff == {"robot", "motion_files", "ball_dist_min", "ball_dist_max", "target_dist_min",
                        "target_dist_max", "approach_speed"}
    agent_diff = {f for f in k["agent"] if k["agent"][f] != g["agent"][f]}
    assert agent_diff == {"actor_optimizer", "critic_optimizer"}


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_defaults_merge_recursively_child_wins(tmp_path):
    _write(tmp_path, "_base.yaml", {"env": {"name": "char", "robot": "k1", "num_envs": 8, "episode_length": 4.0},
                                    "agent": {"name": "ppo", "actor_optimizer": {"type": "adam", "learning_rate": 1e-3},
                                              "gamma": 0.9}})
    mid = _write(tmp_path, "_mid.yaml", {"defaults": "_base", "env": {"num_envs": 4}})
    child = _write(tmp_path, "child.yaml", {"defaults": "_mid.yaml", "description": "a child",
                                            "agent": {"actor_optimizer": {"learning_rate": 5e-5}}})
    c = load_config(child)
    assert c["num_envs"] == 4 and c["env_cfg"].episode_length == 4.0 and c["env_cfg"].robot == "k1"
    assert c["agent_cfg"].gamma == 0.9
    assert c["agent_cfg"].actor_optimizer.type == "adam"            # kept from the base (recursive merge)
    assert c["agent_cfg"].actor_optimizer.learning_rate == 5e-5     # the child's
    assert load_config(mid)["num_envs"] == 4
    # a list of bases merges left to right (the later base wins), then the file
    _write(tmp_path, "_other.yaml", {"env": {"num_envs": 6, "episode_length": 2.0}})
    two = _write(tmp_path, "two.yaml", {"defaults": ["_mid", "_other"], "env": {"episode_length": 3.0}})
    c = load_config(two)
    assert c["num_envs"] == 6 and c["env_cfg"].episode_length == 3.0 and c["env_cfg"].robot == "k1"
    assert load_config(_write(tmp_path, "rev.yaml", {"defaults": ["_other", "_mid"]}))["num_envs"] == 4


def test_defaults_errors_name_the_file(tmp_path):
    bad = _write(tmp_path, "bad.yaml", {"defaults": "_nope", "env": {"name": "char"}})
    with pytest.raises(ConfigError, match=r"bad\.yaml.*_nope"):
        load_config(bad)
    _write(tmp_path, "_base.yaml", {"env": {"name": "char", "robot": "k1", "episode_lenght": 3.0}})
    child = _write(tmp_path, "child.yaml", {"defaults": "_base", "env": {"num_envs": 2}})
    with pytest.raises(ConfigError, match=r"child\.yaml.*episode_lenght"):
        load_config(child)
    loop = _write(tmp_path, "loop.yaml", {"defaults": "loop", "env": {"name": "char"}})
    with pytest.raises(ConfigError, match="loop"):
        load_config(loop)
    num = _write(tmp_path, "num.yaml", {"defaults": 3, "env": {"name": "char"}})
    with pytest.raises(ConfigError, match=r"num\.yaml.*defaults"):
        load_config(num)


def test_fully_resolved_file_loads_without_defaults(tmp_path):
    """What a run saves (the merged mapping, no ``defaults:``) loads to the same values."""
    merged = registry.read_config("k1_kick")
    assert "defaults" not in merged and merged["description"]
    p = _write(tmp_path, "config.yaml", merged)
    assert _jsonable(resolved(p)) == _jsonable(resolved("k1_kick"))


def test_paths_in_a_checkout():
    assert paths.IN_CHECKOUT and (REPO_ROOT / "pyproject.toml").is_file()
    assert (paths.ROBOTS_DIR / "k1" / "robot.yaml").is_file() and (paths.MOTIONS_DIR / "k1").is_dir()
    assert (CONFIGS_DIR / "k1_kick.yaml").is_file()
    assert paths.default_runs_dir() == REPO_ROOT / "runs"
    beside = REPO_ROOT.parent / "shared"
    assert paths.shared_dir() == (beside if beside.is_dir() else None)


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: PYTHONPATH=. python tests/test_configs.py --write")
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps({n: resolved(n) for n in runnable_names()}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
