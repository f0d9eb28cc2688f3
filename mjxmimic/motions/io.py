"""Motion file readers and writers, joint-name mapping and dataset YAMLs.

Formats (``fmt``):

- ``"mimickit"``: MimicKit's ``.pkl``: a pickled dict ``{"loop_mode": 0 clamp | 1 wrap,
  "fps": number, "frames": [[...], ...]}``; each frame is the root position (3), the root
  rotation as an exponential map (3), then one angle per hinge joint in the character's
  depth-first joint order (for our robots: the MJCF joint order = ``robot.joint_names``).
- ``"gmr"``: GMR's ``.pkl`` (general_motion_retargeting): a pickled dict with ``fps``,
  ``root_pos`` [T,3], ``root_rot`` [T,4] **xyzw**, ``dof_pos`` [T,J] (qpos[7:] of the GMR
  robot model, i.e. MJCF joint order), plus ``local_body_pos`` and ``link_body_list``
  (may be None; read and checked for shape, not kept). No loop mode: ``clamp`` unless
  ``loop=`` says otherwise.
- ``"csv"``: Booster's motion CSV: one row per frame, ``x y z qx qy qz qw`` of the base,
  then joint angles (rad) in the vendor's K1 order (:data:`BOOSTER_K1_JOINTS`). The file
  has no frame rate: ``fps=`` is required. Comma- or whitespace-separated; a non-numeric
  first line is taken as a header.
- ``"npz"``: our own (:meth:`Clip.save_npz`), self-describing (joint names included).

Pickles are read with a restricted unpickler that admits only plain Python data and
numpy arrays, so opening a motion file cannot run code.
"""
from __future__ import annotations

import io as _io
import pickle
from pathlib import Path
from typing import Mapping, Sequence

import mujoco
import numpy as np

from mjxmimic import math as rmath
from mjxmimic.io_util import atomic_write
from mjxmimic.motions.clip import Clip, MotionError, check_finite_frames

__all__ = [
    "BOOSTER_K1_JOINTS", "FORMATS", "load_clip", "save_clip", "detect_format", "map_joints",
    "read_mimickit_pkl", "write_mimickit_pkl", "read_gmr_pkl", "write_gmr_pkl",
    "read_booster_csv", "write_booster_csv", "load_dataset", "Dataset", "mjcf_joint_order", "read_pickle",
]

FORMATS = ("mimickit", "gmr", "csv", "npz")

# Vendor joint order of Booster K1 motion CSVs (shared/README.md).
BOOSTER_K1_JOINTS = (
    "AAHead_yaw", "Head_pitch",
    "ALeft_Shoulder_Pitch", "Left_Shoulder_Roll", "Left_Elbow_Pitch", "Left_Elbow_Yaw",
    "ARight_Shoulder_Pitch", "Right_Shoulder_Roll", "Right_Elbow_Pitch", "Right_Elbow_Yaw",
    "Left_Hip_Pitch", "Left_Hip_Roll", "Left_Hip_Yaw", "Left_Knee_Pitch", "Left_Ankle_Pitch", "Left_Ankle_Roll",
    "Right_Hip_Pitch", "Right_Hip_Roll", "Right_Hip_Yaw", "Right_Knee_Pitch", "Right_Ankle_Pitch", "Right_Ankle_Roll",
)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _robot(robot):
    if robot is None or not isinstance(robot, str):
        return robot
    from mjxmimic.robots import load_robot
    return load_robot(robot)


def mjcf_joint_order(robot) -> tuple[str, ...]:
    """Names of the robot's hinge/slide joints in MJCF (depth-first) order: the dof order of
    MimicKit frames and of GMR's ``dof_pos``."""
    m = robot.model
    names = []
    for j in range(m.njnt):
        t = m.jnt_type[j]
        if t == mujoco.mjtJoint.mjJNT_FREE:
            continue
        if t == mujoco.mjtJoint.mjJNT_BALL:
            raise MotionError(f"robot {robot.name}: ball joint '{m.joint(j).name}' is not supported by this writer")
        names.append(m.joint(j).name)
    return tuple(names)


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (motion pickles may hold only "
                                     f"plain data and numpy arrays)")


def read_pickle(path) -> object:
    """Unpickle ``path`` admitting only plain data and numpy arrays; MotionError on a bad file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MotionError(f"{path}: cannot read: {e.strerror or e}") from None
    if not data:
        raise MotionError(f"{path}: empty file")
    try:
        return _SafeUnpickler(_io.BytesIO(data)).load()
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, MemoryError) as e:
        kind = "truncated" if isinstance(e, EOFError) or "truncated" in str(e) else "corrupt or unsupported"
        raise MotionError(f"{path}: {kind} pickle: {type(e).__name__}: {e}") from None


def _as_float_array(x, what: str, path: Path, ndim: int) -> np.ndarray:
    if x is None:
        raise MotionError(f"{path}: '{what}' is missing (None)")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError):
        if isinstance(x, (list, tuple)) and x and all(hasattr(r, "__len__") for r in x):
            lens = [len(r) for r in x]
            i = next(i for i, n in enumerate(lens) if n != lens[0])
            raise MotionError(f"{path}: '{what}' rows have unequal lengths (row 0 has {lens[0]} values, "
                              f"row {i} has {lens[i]}); the file is truncated or corrupt") from None
        raise MotionError(f"{path}: '{what}' is not numeric") from None
    if a.ndim != ndim:
        raise MotionError(f"{path}: '{what}' must be {ndim}-D, got shape {a.shape}")
    return a


def _fps(x, path: Path) -> float:
    try:
        f = float(np.asarray(x).reshape(()))
    except (TypeError, ValueError):
        raise MotionError(f"{path}: fps must be a number, got {x!r}") from None
    if not np.isfinite(f) or f <= 0:
        raise MotionError(f"{path}: fps must be a positive number, got {f}")
    return f


def _make_clip(path: Path, **kw) -> Clip:
    try:
        return Clip(name=path.stem, **kw)
    except MotionError as e:
        raise MotionError(f"{path}: {e}") from None


def _names_for(n_cols: int, joint_names, path: Path, what: str) -> tuple[str, ...]:
    if joint_names is None:
        raise MotionError(f"{path}: a {what} file does not name its {n_cols} joint columns; "
                          f"pass robot= (MJCF joint order) or joint_names=")
    joint_names = tuple(joint_names)
    if n_cols != len(joint_names):
        raise MotionError(f"{path}: has {n_cols} joint columns, expected {len(joint_names)} "
                          f"({joint_names[0]} ... {joint_names[-1]})")
    return joint_names


# ---------------------------------------------------------------------------------------
# MimicKit .pkl
# ---------------------------------------------------------------------------------------
def read_mimickit_pkl(path, joint_names: Sequence[str] | None) -> Clip:
    """Read a MimicKit motion pickle; ``joint_names`` name the dof columns (all 1-DoF)."""
    path = Path(path)
    d = read_pickle(path)
    if not isinstance(d, dict):
        raise MotionError(f"{path}: expected a dict, got {type(d).__name__}")
    missing = [k for k in ("loop_mode", "fps", "frames") if k not in d]
    if missing:
        raise MotionError(f"{path}: not a MimicKit motion: missing key(s) {missing}; keys: {sorted(d)}")
    lm = d["loop_mode"]
    lm = getattr(lm, "value", lm)
    if lm not in (0, 1):
        raise MotionError(f"{path}: loop_mode must be 0 (clamp) or 1 (wrap), got {d['loop_mode']!r}")
    fps = _fps(d["fps"], path)
    frames = _as_float_array(d["frames"], "frames", path, 2)
    if frames.shape[0] < 1:
        raise MotionError(f"{path}: no frames")
    if frames.shape[1] < 6:
        raise MotionError(f"{path}: frames have {frames.shape[1]} values; need root pos (3) + exp map (3) + joints")
    names = _names_for(frames.shape[1] - 6, joint_names, path, "MimicKit")
    check_finite_frames(frames, str(path))
    rot = np.asarray(rmath.exp_map_to_quat(frames[:, 3:6]), dtype=np.float64)
    return _make_clip(path, fps=fps, loop="wrap" if lm == 1 else "clamp", root_pos=frames[:, :3],
                      root_rot=rot, joint_pos=frames[:, 6:], joint_names=names)


def _fps_out(fps: float):
    return int(round(fps)) if abs(fps - round(fps)) < 1e-9 else float(fps)


def write_mimickit_pkl(clip: Clip, path, robot) -> Path:
    """Write ``clip`` as a MimicKit motion for ``robot`` (dofs in MJCF depth-first order)."""
    robot = _robot(robot)
    c = clip.for_robot(mjcf_joint_order(robot))
    exp = np.asarray(rmath.quat_to_exp_map(np.asarray(c.root_rot, np.float64)), dtype=np.float64)
    frames = np.concatenate([c.root_pos, exp, c.joint_pos], axis=1)
    out = {"loop_mode": 1 if c.loop == "wrap" else 0, "fps": _fps_out(c.fps),
           "frames": [[float(v) for v in row] for row in frames]}
    return atomic_write(path, pickle.dumps(out))


# ---------------------------------------------------------------------------------------
# GMR .pkl
# ---------------------------------------------------------------------------------------
def read_gmr_pkl(path, joint_names: Sequence[str] | None, loop: str = "clamp") -> Clip:
    path = Path(path)
    d = read_pickle(path)
    if not isinstance(d, dict):
        raise MotionError(f"{path}: expected a dict, got {type(d).__name__}")
    missing = [k for k in ("fps", "root_pos", "root_rot", "dof_pos") if k not in d]
    if missing:
        raise MotionError(f"{path}: not a GMR motion: missing key(s) {missing}; keys: {sorted(d)}")
    fps = _fps(d["fps"], path)
    pos = _as_float_array(d["root_pos"], "root_pos", path, 2)
    rot = _as_float_array(d["root_rot"], "root_rot", path, 2)
    dof = _as_float_array(d["dof_pos"], "dof_pos", path, 2)
    t = pos.shape[0]
    if pos.shape != (t, 3) or rot.shape != (t, 4) or dof.shape[0] != t:
        raise MotionError(f"{path}: inconsistent shapes root_pos {pos.shape}, root_rot {rot.shape} (xyzw), "
                          f"dof_pos {dof.shape}")
    lbp = d.get("local_body_pos")
    if lbp is not None:
        lbp = np.asarray(lbp)
        links = d.get("link_body_list")
        if lbp.ndim != 3 or lbp.shape[0] != t or lbp.shape[2] != 3 or (links is not None and len(links) != lbp.shape[1]):
            raise MotionError(f"{path}: local_body_pos has shape {lbp.shape}, expected [{t}, "
                              f"{'B' if links is None else len(links)}, 3]")
    names = _names_for(dof.shape[1], joint_names, path, "GMR")
    for k, a in (("root_pos", pos), ("root_rot", rot), ("dof_pos", dof)):
        check_finite_frames(a, f"{path}: {k}")
    return _make_clip(path, fps=fps, loop=loop, root_pos=pos,
                      root_rot=np.asarray(rmath.quat_xyzw_to_wxyz(rot), np.float64), joint_pos=dof, joint_names=names)


def write_gmr_pkl(clip: Clip, path, robot) -> Path:
    """Write GMR's schema (local_body_pos / link_body_list set to None, as GMR's scripts do)."""
    robot = _robot(robot)
    c = clip.for_robot(mjcf_joint_order(robot))
    out = {"fps": _fps_out(c.fps), "root_pos": c.root_pos.astype(np.float64),
           "root_rot": np.asarray(rmath.quat_wxyz_to_xyzw(c.root_rot), np.float64),
           "dof_pos": c.joint_pos.astype(np.float64), "local_body_pos": None, "link_body_list": None}
    return atomic_write(path, pickle.dumps(out))


# ---------------------------------------------------------------------------------------
# Booster CSV
# ---------------------------------------------------------------------------------------
def read_booster_csv(path, fps: float | None, joint_names: Sequence[str] | None = BOOSTER_K1_JOINTS,
                     loop: str = "clamp") -> Clip:
    path = Path(path)
    if fps is None:
        raise MotionError(f"{path}: a Booster CSV has no frame rate; pass fps=")
    fps = _fps(fps, path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MotionError(f"{path}: cannot read as text: {e}") from None
    rows, width = [], None
    for ln, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [p for p in (s.split(",") if "," in s else s.split())]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows and width is None:
                width = -1  # header line: skip it
                continue
            raise MotionError(f"{path}: line {ln}: non-numeric value in {s[:60]!r}") from None
        if rows and len(vals) != len(rows[0]):
            raise MotionError(f"{path}: line {ln}: {len(vals)} values, previous rows have {len(rows[0])} "
                              f"(truncated or corrupt row)")
        rows.append(vals)
    if not rows:
        raise MotionError(f"{path}: no frames")
    a = np.asarray(rows, np.float64)
    if a.shape[1] < 7:
        raise MotionError(f"{path}: rows have {a.shape[1]} values; need x y z qx qy qz qw + joints")
    names = _names_for(a.shape[1] - 7, joint_names, path, "Booster CSV")
    check_finite_frames(a, str(path))
    return _make_clip(path, fps=fps, loop=loop, root_pos=a[:, :3],
                      root_rot=np.asarray(rmath.quat_xyzw_to_wxyz(a[:, 3:7]), np.float64),
                      joint_pos=a[:, 7:], joint_names=names)


def write_booster_csv(clip: Clip, path, joint_names: Sequence[str] = BOOSTER_K1_JOINTS) -> Path:
    c = clip.for_robot(tuple(joint_names))
    q = np.asarray(rmath.quat_wxyz_to_xyzw(c.root_rot), np.float64)
    a = np.concatenate([c.root_pos, q, c.joint_pos], axis=1)
    buf = _io.StringIO()
    np.savetxt(buf, a, delimiter=",", fmt="%.9g")
    return atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------------------------------
# joint-name mapping
# ---------------------------------------------------------------------------------------
def map_joints(clip: Clip, robot, name_map: Mapping[str, str] | None = None, allow_missing: bool = False,
               allow_extra: bool = False) -> Clip:
    """Rename the clip's joints by ``name_map`` (source -> robot name; unlisted names kept) and
    reorder them to ``robot.joint_names`` (a Robot, a robot name or a sequence of names).

    Robot joints the clip lacks are an error unless ``allow_missing`` (then filled with the
    robot's default pose, or 0 for a plain name list); clip joints the robot lacks are an
    error unless ``allow_extra`` (then dropped)."""
    robot = _robot(robot)
    if isinstance(robot, (list, tuple)):
        target, default = tuple(robot), np.zeros(len(robot))
    else:
        target, default = tuple(robot.joint_names), np.asarray(robot.default_joint_pos, np.float64)
    names = list(clip.joint_names)
    if name_map:
        unknown = [k for k in name_map if k not in names]
        if unknown:
            raise MotionError(f"clip '{clip.name}': name_map renames joint(s) {unknown} the clip does not have; "
                              f"clip joints: {names}")
        names = [name_map.get(n, n) for n in names]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise MotionError(f"clip '{clip.name}': name_map maps several joints onto {dup}")
    missing = [n for n in target if n not in names]
    extra = [n for n in names if n not in target]
    who = f"robot {robot.name}" if hasattr(robot, "name") else "the target"
    if missing and not allow_missing:
        raise MotionError(f"clip '{clip.name}' lacks joint(s) {missing} of {who}"
                          f"{' after name_map' if name_map else ''} (pass allow_missing=True to fill them "
                          f"with the default pose); clip joints: {names}")
    if extra and not allow_extra:
        raise MotionError(f"clip '{clip.name}' has joint(s) {extra} that {who} lacks (map them with name_map "
                          f"or pass allow_extra=True to drop them)")
    cols = {n: i for i, n in enumerate(names)}
    jp = np.stack([clip.joint_pos[:, cols[n]] if n in cols else np.full(clip.num_frames, default[i])
                   for i, n in enumerate(target)], axis=1) if target else np.zeros((clip.num_frames, 0))
    return clip.replace(joint_pos=jp, joint_names=target)


# ---------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------
def _csv_order(robot) -> tuple[str, ...]:
    """Column order of a CSV: Booster's vendor order for K1 (or no robot), else the robot's
    MJCF order (the same x y z qx qy qz qw + joints layout is used for G1 CSVs)."""
    if robot is None or set(robot.joint_names) == set(BOOSTER_K1_JOINTS):
        return BOOSTER_K1_JOINTS
    return mjcf_joint_order(robot)


def detect_format(path) -> str:
    """Format of a motion file from its suffix, and for ``.pkl`` from its keys."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".npz":
        return "npz"
    if suf in (".csv", ".txt"):
        return "csv"
    if suf in (".yaml", ".yml"):
        raise MotionError(f"{path}: is a dataset YAML; use load_dataset() / load_motion_lib()")
    if suf in (".pkl", ".pickle"):
        if not path.exists():
            raise MotionError(f"{path}: no such file")
        d = read_pickle(path)
        if isinstance(d, dict) and "frames" in d:
            return "mimickit"
        if isinstance(d, dict) and "dof_pos" in d:
            return "gmr"
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise MotionError(f"{path}: unknown pickle layout ({keys}); expected MimicKit "
                          f"(loop_mode, fps, frames) or GMR (fps, root_pos, root_rot, dof_pos)")
    raise MotionError(f"{path}: unknown motion format '{suf}'; known: .pkl (MimicKit/GMR), .csv (Booster), .npz")


def load_clip(path, robot=None, fps: float | None = None, fmt: str | None = None, *,
              joint_names: Sequence[str] | None = None, name_map: Mapping[str, str] | None = None,
              loop: str | None = None, allow_missing: bool = False, allow_extra: bool = False) -> Clip:
    """Read any supported motion file into a :class:`Clip`.

    robot: Robot or robot name. Unless ``joint_names`` is given, it names the columns of
        formats that carry no joint names (MimicKit, GMR: the robot's MJCF joint order; CSV:
        Booster's K1 order for K1 or no robot, else the robot's MJCF order), and the result is
        mapped to ``robot.joint_names``.
    fps: frame rate; required for CSV, overrides the file's rate for the other formats.
    fmt: one of :data:`FORMATS`; detected from suffix/content when None.
    joint_names: the source's column names (overrides the defaults above).
    name_map: source -> robot joint names. loop: 'wrap'|'clamp' override.
    """
    path = Path(path)
    robot = _robot(robot)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise MotionError(f"{path}: unknown fmt {fmt!r}; known: {FORMATS}")
    if not path.exists():
        raise MotionError(f"{path}: no such file")
    if loop is not None and loop not in ("wrap", "clamp"):
        raise MotionError(f"{path}: loop must be 'wrap' or 'clamp', got {loop!r}")
    src_names = tuple(joint_names) if joint_names is not None else None
    if fmt in ("mimickit", "gmr") and src_names is None and robot is not None:
        src_names = mjcf_joint_order(robot)
    if fmt == "mimickit":
        clip = read_mimickit_pkl(path, src_names)
    elif fmt == "gmr":
        clip = read_gmr_pkl(path, src_names, loop=loop or "clamp")
    elif fmt == "csv":
        clip = read_booster_csv(path, fps, src_names if src_names is not None else _csv_order(robot),
                                loop=loop or "clamp")
    else:
        clip = Clip.load_npz(path)
    if fps is not None and fmt != "csv":
        clip = _make_clip(path, **{**_fields(clip), "fps": _fps(fps, path)})
    if loop is not None and clip.loop != loop:
        clip = clip.replace(loop=loop)
    if robot is not None:
        try:
            clip = map_joints(clip, robot, name_map, allow_missing=allow_missing, allow_extra=allow_extra)
        except MotionError as e:
            raise MotionError(f"{path}: {e}") from None
    elif name_map:
        try:
            clip = map_joints(clip, [name_map.get(n, n) for n in clip.joint_names], name_map)
        except MotionError as e:
            raise MotionError(f"{path}: {e}") from None
    return clip


def _fields(c: Clip) -> dict:
    return dict(fps=c.fps, loop=c.loop, root_pos=c.root_pos, root_rot=c.root_rot, joint_pos=c.joint_pos,
                joint_names=c.joint_names)


def save_clip(clip: Clip, path, robot=None, fmt: str | None = None) -> Path:
    """Write ``clip``; format from ``fmt`` or the suffix (.npz ours, .pkl MimicKit, .csv Booster).
    Pickle formats need ``robot`` (for the MJCF dof order). Written atomically."""
    path = Path(path)
    robot = _robot(robot)
    if fmt is None:
        fmt = {".npz": "npz", ".pkl": "mimickit", ".pickle": "mimickit", ".csv": "csv"}.get(path.suffix.lower())
        if fmt is None:
            raise MotionError(f"{path}: cannot tell the output format from '{path.suffix}'; pass fmt= one of {FORMATS}")
    if fmt in ("mimickit", "gmr") and robot is None:
        raise MotionError(f"{path}: writing {fmt} needs robot= (its MJCF joint order)")
    if fmt == "npz":
        if path.suffix != ".npz":
            raise MotionError(f"{path}: npz output needs a .npz suffix")
        return clip.save_npz(path)
    if fmt == "mimickit":
        return write_mimickit_pkl(clip, path, robot)
    if fmt == "gmr":
        return write_gmr_pkl(clip, path, robot)
    if fmt == "csv":
        return write_booster_csv(clip, path, _csv_order(robot))
    raise MotionError(f"{path}: unknown fmt {fmt!r}; known: {FORMATS}")


# ---------------------------------------------------------------------------------------
# dataset YAML
# ---------------------------------------------------------------------------------------
class Dataset(tuple):
    """(clips, weights, files) of a dataset YAML."""

    def __new__(cls, clips, weights, files):
        return super().__new__(cls, (tuple(clips), np.asarray(weights, np.float64), tuple(files)))

    clips = property(lambda self: self[0])
    weights = property(lambda self: self[1])
    files = property(lambda self: self[2])


def load_dataset(path, robot=None, **load_kw) -> Dataset:
    """Read a MimicKit-style dataset YAML::

        motions:
          - {file: walk.pkl, weight: 2.0}
          - {file: run.npz, weight: 1.0, fps: 30, loop: wrap}   # optional per-clip load_clip args

    ``file`` paths are relative to the YAML. ``load_kw`` go to :func:`load_clip` for every clip.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise MotionError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise MotionError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("motions"), list) or not raw["motions"]:
        raise MotionError(f"{path}: expected a mapping with a non-empty list 'motions: [{{file:, weight:}}]'")
    clips, weights, files = [], [], []
    for i, e in enumerate(raw["motions"]):
        where = f"{path}: motions[{i}]"
        if not isinstance(e, dict) or "file" not in e:
            raise MotionError(f"{where}: expected a mapping with 'file' (and 'weight'), got {e!r}")
        extra = set(e) - {"file", "weight", "fps", "loop", "fmt"}
        if extra:
            raise MotionError(f"{where}: unknown key(s) {sorted(extra)}")
        try:
            w = float(e.get("weight", 1.0))
        except (TypeError, ValueError):
            raise MotionError(f"{where}: weight must be a number, got {e.get('weight')!r}") from None
        if not np.isfinite(w) or w < 0:
            raise MotionError(f"{where}: weight must be >= 0, got {w}")
        f = Path(e["file"])
        f = f if f.is_absolute() else path.parent / f
        if not f.exists():
            raise MotionError(f"{where}: file {f} does not exist")
        kw = {**load_kw, **{k: e[k] for k in ("fps", "loop", "fmt") if k in e}}
        clips.append(load_clip(f, robot, **kw))
        weights.append(w)
        files.append(f)
    if sum(weights) <= 0:
        raise MotionError(f"{path}: all weights are 0")
    return Dataset(clips, weights, files)
