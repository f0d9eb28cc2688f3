"""URDF -> MJX-ready MJCF, built on MuJoCo's URDF compiler and the MjSpec API.

    python -m mjxmimic.robots.convert URDF --robot k1 --out robots/k1/k1.xml [--meshes DIR]
    python -m mjxmimic.robots.convert --all        # regenerate every robots/*/ from its spec

The URDF gives kinematics, inertia and joint limits; robots/<name>/robot.yaml gives
what a URDF lacks (armature, PD gains, primitive collision geoms, sites, sim options).
Nothing is written unless the whole conversion succeeds.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from mjxmimic.io_util import atomic_write
from mjxmimic.paths import REPO_ROOT
from mjxmimic.robots.spec import RobotSpec, RobotSpecError, load_spec, spec_path

# Collision bits: a pair collides when (contype_a & conaffinity_b) | (contype_b & conaffinity_a).
# The floor touches only "floor" geoms (feet); other robot geoms touch only objects such
# as the ball; robot geoms never touch each other, so MJX tests no useless pairs.
CONTYPE_FLOOR, CONAFF_FLOOR = 1, 0
CONTYPE_FOOT, CONAFF_FOOT = 2, 1
CONTYPE_BODY, CONAFF_BODY = 4, 0
CONTYPE_OBJECT, CONAFF_OBJECT = 8, 1 | 2 | 4

_INTEGRATOR = {"euler": mujoco.mjtIntegrator.mjINT_EULER, "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
               "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT, "rk4": mujoco.mjtIntegrator.mjINT_RK4}
_GEOM = {"sphere": mujoco.mjtGeom.mjGEOM_SPHERE, "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
         "box": mujoco.mjtGeom.mjGEOM_BOX}


class ConversionError(RuntimeError):
    """The URDF and the robot spec cannot be turned into a model."""


def urdf_info(urdf: Path):
    """Movable joints (name -> effort) and visual meshes per link, read from the URDF."""
    if not urdf.exists():
        raise ConversionError(f"URDF not found: {urdf}")
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as e:
        raise ConversionError(f"{urdf}: malformed URDF XML: {e}") from None
    joints = {}
    for j in root.iter("joint"):
        if j.get("type") in ("revolute", "continuous", "prismatic"):
            lim = j.find("limit")
            joints[j.get("name")] = float(lim.get("effort", "inf")) if lim is not None else math.inf
    visuals = []
    for link in root.iter("link"):
        for vis in link.findall("visual"):
            mesh = vis.find("geometry/mesh")
            if mesh is None:
                continue
            org = vis.find("origin")
            xyz = [float(x) for x in (org.get("xyz", "0 0 0") if org is not None else "0 0 0").split()]
            rpy = [float(x) for x in (org.get("rpy", "0 0 0") if org is not None else "0 0 0").split()]
            visuals.append((link.get("name"), mesh.get("filename"), xyz, rpy))
    return joints, visuals


def _rpy_to_quat(rpy):
    # URDF rpy: fixed-axis x, y, z rotations, i.e. R = Rz(yaw) Ry(pitch) Rx(roll).
    q = np.zeros(4)
    mujoco.mju_euler2Quat(q, np.asarray(rpy, dtype=float), "XYZ")
    return q


def _check(robot: RobotSpec, urdf_joints: dict, visuals, meshes_dir: Path | None):
    missing = [n for n in robot.joint_names if n not in urdf_joints]
    if missing:
        raise ConversionError(
            f"joint(s) {missing} in {robot.path} are not in {robot.urdf.name}; "
            f"the URDF's movable joints are: {list(urdf_joints)}")
    extra = [n for n in urdf_joints if n not in robot.joint_names]
    if extra:
        raise ConversionError(
            f"URDF joint(s) {extra} have no entry in {robot.path} 'joints' (every movable joint needs "
            f"armature and gains); the URDF's movable joints are: {list(urdf_joints)}")
    if meshes_dir is not None:
        if not meshes_dir.is_dir():
            raise ConversionError(f"--meshes: not a directory: {meshes_dir}")
        lost = sorted({Path(f).name for _, f, _, _ in visuals if not (meshes_dir / Path(f).name).exists()})
        if lost:
            raise ConversionError(f"mesh file(s) missing from {meshes_dir}: {lost}")


def build_spec(robot: RobotSpec, urdf: Path | None = None, meshes_dir: Path | None = None) -> mujoco.MjSpec:
    urdf = Path(urdf or robot.urdf)
    robot = robot if urdf == robot.urdf else _with_urdf(robot, urdf)
    urdf_joints, visuals = urdf_info(urdf)
    _check(robot, urdf_joints, visuals, meshes_dir)
    try:
        spec = mujoco.MjSpec.from_file(str(urdf))
    except Exception as e:  # MuJoCo raises ValueError with its parser message
        raise ConversionError(f"{urdf}: MuJoCo could not parse the URDF: {e}") from None
    spec.modelname = robot.name
    spec.compiler.fusestatic = robot.fuse_static
    spec.compiler.autolimits = True
    spec.compiler.discardvisual = False  # keep our materials; URDF visuals are deleted below

    # Drop every imported geom and mesh: collision comes from primitives only.
    for g in list(spec.geoms):
        spec.delete(g)
    for m in list(spec.meshes):
        spec.delete(m)

    bodies = {b.name: b for b in spec.bodies}
    for n in (robot.root_body, *robot.key_bodies, *robot.contact_bodies, *robot.feet,
              *(g.body for g in robot.collision), *(s.body for s in robot.sites)):
        if n not in bodies:
            raise ConversionError(f"{robot.path} names body '{n}', which the model lacks; bodies: {sorted(b for b in bodies if b != 'world')}")
    for name, inert in robot.inertial_overrides.items():
        if name not in bodies:
            raise ConversionError(f"{robot.path}: inertial_overrides names body '{name}', which the model lacks")
        b = bodies[name]
        b.mass, b.ipos, b.iquat, b.inertia = inert["mass"], inert["pos"], inert["quat"], inert["diaginertia"]
        b.fullinertia = [math.nan] * 6  # use the diagonal + iquat form given above
        b.explicitinertial = True
    root = bodies[robot.root_body]
    root.add_freejoint(name="root")

    spec.option.timestep = robot.timestep
    spec.option.iterations = robot.iterations
    spec.option.ls_iterations = robot.ls_iterations
    spec.option.integrator = _INTEGRATOR[robot.integrator]
    spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON

    jmap = {j.name: j for j in spec.joints}
    for js in robot.joints:
        j = jmap[js.name]
        j.armature = js.armature
        j.damping = np.zeros_like(np.asarray(j.damping, dtype=float))
        effort = urdf_joints[js.name]
        a = spec.add_actuator(name=js.name, target=js.name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        a.set_to_position(kp=js.kp, kv=js.kd)
        a.ctrlrange = j.range
        a.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        if math.isfinite(effort):
            a.forcerange = [-effort, effort]
            a.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE

    for i, g in enumerate(robot.collision):
        geom = bodies[g.body].add_geom(
            name=f"{g.body}_col{i}", type=_GEOM[g.type], size=list(g.size) + [0.0] * (3 - len(g.size)),
            contype=CONTYPE_FOOT if g.floor else CONTYPE_BODY,
            conaffinity=CONAFF_FOOT if g.floor else CONAFF_BODY,
            condim=3, friction=[robot.floor_friction, 0.005, 0.0001], density=0.0,
            rgba=[0.8, 0.4, 0.2, 1.0] if g.floor else [0.7, 0.7, 0.75, 1.0], group=3 if meshes_dir else 0)
        if g.pos is not None:
            geom.pos = g.pos
        if g.fromto is not None:
            geom.fromto = g.fromto
    for s in robot.sites:
        bodies[s.body].add_site(name=s.name, pos=s.pos, size=[0.01, 0.01, 0.01], group=4)

    if meshes_dir is not None:
        seen = set()
        for link, fname, xyz, rpy in visuals:
            if link not in bodies:  # fused into its parent by fusestatic: MuJoCo keeps no frame for it
                continue
            mname = Path(fname).stem
            if mname not in seen:
                spec.add_mesh(name=mname, file=str((meshes_dir / Path(fname).name).resolve()))
                seen.add(mname)
            bodies[link].add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mname, pos=xyz, quat=_rpy_to_quat(rpy),
                                  contype=0, conaffinity=0, density=0.0, group=2, rgba=[0.75, 0.75, 0.78, 1.0])

    spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.15, 0.2], width=512, height=512)
    mat = spec.add_material(name="grid", texrepeat=[1, 1], texuniform=True, reflectance=0.1)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "grid"
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], material="grid",
                            contype=CONTYPE_FLOOR, conaffinity=CONAFF_FLOOR, condim=3,
                            friction=[robot.floor_friction, 0.005, 0.0001])
    spec.worldbody.add_light(name="sun", pos=[0, 0, 4], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    root.add_camera(name="track", mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM, pos=[0.0, -2.5, 0.4],
                    xyaxes=[1, 0, 0, 0, 0.16, 0.99])
    return spec


def _with_urdf(robot: RobotSpec, urdf: Path) -> RobotSpec:
    import dataclasses
    return dataclasses.replace(robot, urdf=urdf.resolve())


def to_xml(robot: RobotSpec, urdf: Path | None = None, meshes_dir: Path | None = None,
           out_dir: Path | None = None) -> str:
    spec = build_spec(robot, urdf, meshes_dir)
    try:
        spec.compile()
    except Exception as e:
        raise ConversionError(f"MuJoCo could not compile the converted model: {e}") from None
    if meshes_dir is not None and out_dir is not None:
        # Mesh paths relative to the output so the file can be moved with its meshes.
        # to_xml re-reads the meshes relative to modelfiledir (the URDF's folder by default).
        for m in spec.meshes:
            m.file = os.path.relpath(m.file, out_dir)
        spec.modelfiledir = str(out_dir)
    xml = spec.to_xml()
    src = Path(urdf or robot.urdf).name
    header = (f"<!-- Generated by `python -m mjxmimic.robots.convert` from {src} and robots/{robot.name}/robot.yaml;"
              f" do not edit. Source: {robot.vendor}; see LICENSE in this folder. -->\n")
    return header + xml


def license_text(robot: RobotSpec) -> str | None:
    if robot.license is None or not robot.license.exists():
        return None
    return (f"The model {robot.name}.xml in this folder is generated from a robot description by "
            f"{robot.vendor}.\nIts license follows.\n\n" + robot.license.read_text())


def convert(robot: RobotSpec, out: Path, urdf: Path | None = None, meshes_dir: Path | None = None) -> Path:
    """Convert and write `out` (plus LICENSE beside it); nothing is written on error."""
    out = Path(out)
    xml = to_xml(robot, urdf, meshes_dir, out_dir=out.parent.resolve())
    lic = license_text(robot)
    atomic_write(out, xml)
    if lic is not None:
        atomic_write(out.parent / "LICENSE", lic)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.robots.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("urdf", nargs="?", help="vendor URDF (default: the spec's source.urdf)")
    ap.add_argument("--robot", help="robot name (robots/<name>/robot.yaml) or a path to a spec YAML")
    ap.add_argument("--out", help="output MJCF (default robots/<name>/<name>.xml)")
    ap.add_argument("--meshes", help="directory of the URDF's mesh files, added as visual-only geoms")
    ap.add_argument("--all", action="store_true", help="regenerate every robot under robots/ from its spec")
    args = ap.parse_args(argv)
    try:
        if args.all:
            for d in sorted((REPO_ROOT / "robots").iterdir()):
                if (d / "robot.yaml").exists():
                    r = load_spec(d / "robot.yaml")
                    print(f"wrote {convert(r, r.xml_path)}")
            return 0
        if not args.robot:
            ap.error("--robot is required (or --all)")
        r = load_spec(args.robot if args.robot.endswith((".yaml", ".yml")) else spec_path(args.robot))
        out = Path(args.out) if args.out else r.xml_path
        print(f"wrote {convert(r, out, Path(args.urdf) if args.urdf else None, Path(args.meshes) if args.meshes else None)}")
        return 0
    except (ConversionError, RobotSpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
