"""Render models with the vendors' meshes: the converter's visual-only mesh geoms, in memory.

    mesh_dir, why = find_meshes(robot)         # --meshes DIR > $MJXMIMIC_MESHES > ../shared/robots/<vendor>/meshes
    m = visual_model("k1", mesh_dir)           # same bodies, joints and qpos layout as robot.model

The visual model is the converter's output with ``--meshes`` (:func:`convert.build_spec`): mesh
geoms in group 2 with contype/conaffinity 0, the collision primitives moved to group 3, which
MuJoCo's renderer hides by default. The simulated models never contain the meshes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import mujoco

from mjxmimic.robots.convert import ConversionError, build_spec, urdf_info
from mjxmimic.robots.spec import load_spec, spec_path

__all__ = ["MESHES_ENV", "MeshError", "find_meshes", "mesh_files", "visual_model"]

MESHES_ENV = "MJXMIMIC_MESHES"
MESH_GROUP, COLLISION_GROUP = 2, 3   # convert.build_spec's groups when meshes are added


class MeshError(ValueError):
    """Vendor meshes were asked for but cannot be used."""


def mesh_files(spec) -> set[str]:
    """Basenames of the mesh files the robot's URDF <visual>s use (empty if the URDF is absent)."""
    if not Path(spec.urdf).exists():
        return set()
    return {Path(f).name for _, f, _, _ in urdf_info(Path(spec.urdf))[1]}


def _usable(spec, d: Path) -> Path | None:
    """``d`` itself or ``d/<vendor folder>/meshes`` (one MJXMIMIC_MESHES for every robot), if it holds
    every mesh the URDF names."""
    need = mesh_files(spec)
    for c in (d, d / Path(spec.urdf).parent.name / "meshes"):
        if need and c.is_dir() and all((c / n).exists() for n in need):
            return c
    return None


def find_meshes(robot, mesh_dir: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(folder of the robot's vendor meshes or None, why not). ``mesh_dir`` (a ``--meshes`` flag)
    wins over ``$MJXMIMIC_MESHES``, which wins over ``../shared/robots/<vendor>/meshes`` beside a
    checkout (the folder of the URDF named in robot.yaml). ``"none"`` turns meshes off.

    Raises :class:`MeshError` when ``mesh_dir`` or the env var names a folder that cannot be used."""
    spec = robot.spec if hasattr(robot, "spec") else load_spec(spec_path(robot))
    given = [(str(mesh_dir), "--meshes")] if mesh_dir else []
    if os.environ.get(MESHES_ENV):
        given.append((os.environ[MESHES_ENV], MESHES_ENV))
    if given:
        value, where = given[0]
        if value.lower() == "none":
            return None, f"{where}=none"
        if not Path(spec.urdf).exists():
            raise MeshError(f"{where}: meshes need the vendor URDF {spec.urdf}, which is not here")
        d = _usable(spec, Path(value).expanduser())
        if d is None:
            raise MeshError(f"{where}={value}: not a folder holding every mesh of {Path(spec.urdf).name} "
                            f"(nor its {Path(spec.urdf).parent.name}/meshes)")
        return d, ""
    if not Path(spec.urdf).exists():
        return None, f"the vendor files ({Path(spec.urdf).parent}) are not here"
    d = _usable(spec, Path(spec.urdf).parent / "meshes")
    return (d, "") if d is not None else (None, f"no complete mesh folder at {Path(spec.urdf).parent / 'meshes'}")


@functools.lru_cache(maxsize=8)
def _compiled(name: str, mesh_dir: str) -> mujoco.MjModel:
    spec = load_spec(spec_path(name))
    try:
        return build_spec(spec, meshes_dir=Path(mesh_dir)).compile()
    except ConversionError as e:
        raise MeshError(str(e)) from None
    except ValueError as e:  # MuJoCo's compiler (a corrupt mesh file)
        raise MeshError(f"MuJoCo could not compile {name} with the meshes in {mesh_dir}: {e}") from None


def visual_model(robot_name: str, mesh_dir: str | os.PathLike) -> mujoco.MjModel:
    """The robot's model with the vendor meshes as visual-only geoms (cached; do not modify it).

    Same bodies, joints and qpos/qvel layout as ``load_robot(robot_name).model``, so a simulated
    qpos renders as is; the collision primitives are in group 3 (hidden by default)."""
    return _compiled(robot_name, str(Path(mesh_dir).resolve()))
