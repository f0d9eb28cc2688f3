"""Watch motion clips on a robot: an mp4 (headless) or MuJoCo's interactive viewer.

    python -m mjxmimic.view CLIP [CLIP ...] --robot k1 [--out x.mp4] [--fps 30] [--loops 2]
    python -m mjxmimic.view --env k1_view_motion [--set env.motion_file=run.npz] [--out x.mp4]
    python -m mjxmimic.view --dof-test --robot k1 --out k1_dof.mp4     # = --env k1_dof_test

``--env NAME`` renders one episode of a config's env, stepped with zero actions (:func:`env_rollout`):
the view-motion env (kinematic playback, the same MotionLib sampling as below), the DoF-test env
(each joint swept to its limits, root fixed), or any other env (a static-objects scene shows its
props). Its frame rate is the env's control rate.

CLIP is any file :func:`mjxmimic.motions.io.load_clip` reads, or a dataset YAML (its clips
play in sequence). Frames are sampled from a MotionLib exactly as training sees them
(interpolation, wrap offsets of looping clips).

The robot is drawn with the vendor's meshes when they are found (``--meshes DIR``, else
``$MJXMIMIC_MESHES``, else ``../shared/robots/<vendor>/meshes`` beside a checkout; see
:mod:`mjxmimic.robots.visual`), otherwise with its collision primitives.

With ``--out`` (or when there is no display) the video is rendered offscreen with
``mujoco.Renderer`` and written next to the first clip (``walk.npz`` -> ``walk.mp4``), or
under ``runs/view/`` for the package's own clips and read-only folders. The mp4 is encoded
by imageio-ffmpeg, else OpenCV; without either, a GIF. The OpenGL backend is picked before
mujoco is imported: ``MUJOCO_GL`` if set, else the first of egl, osmesa that can render here
(probed in a subprocess); ``glfw`` when a display exists and the interactive viewer is wanted. Headless machines
need one of the system packages ``libegl1`` (plus a Mesa/NVIDIA EGL driver, e.g.
``libegl-mesa0``) or ``libosmesa6``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

__all__ = ["select_gl_backend", "gl_backend_works", "clip_qpos", "camera", "make_renderer", "MeshRenderer",
           "video_writer", "write_video", "default_out", "render_video", "follow_camera", "rollout_camera",
           "render_rollout", "render_rows", "view_interactive",
           "env_rollout", "main"]

_PROBE = ("import mujoco\n"
          "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos=\"0 0 2\"/>"
          "<geom type=\"sphere\" size=\".1\"/></worldbody></mujoco>')\n"
          "r = mujoco.Renderer(m, 16, 16); d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
          "r.update_scene(d); assert r.render().shape == (16, 16, 3)\n")


def gl_backend_works(backend: str, timeout: float = 60.0) -> bool:
    """Whether mujoco.Renderer can render with MUJOCO_GL=backend (checked in a subprocess)."""
    env = dict(os.environ, MUJOCO_GL=backend)
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    else:
        env.pop("PYOPENGL_PLATFORM", None)
    try:
        with warnings.catch_warnings():  # JAX may be running threads; exec follows the fork at once
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
            r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return r.returncode == 0


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def select_gl_backend(interactive: bool = False, set_env: bool = True) -> str | None:
    """Pick MUJOCO_GL: the user's choice if set; 'glfw' for an interactive viewer on a display;
    else the first of egl, osmesa that renders here (None if none). Call before importing mujoco."""
    chosen = os.environ.get("MUJOCO_GL")
    if not chosen:
        if interactive and has_display():
            chosen = "glfw"
        else:
            chosen = next((b for b in ("egl", "osmesa") if gl_backend_works(b)), None)
            if chosen is None and has_display() and gl_backend_works("glfw"):
                chosen = "glfw"
    if chosen and set_env:
        if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL") != chosen:
            print(f"warning: mujoco is already imported; MUJOCO_GL={chosen} may not take effect", file=sys.stderr)
        os.environ["MUJOCO_GL"] = chosen
        if chosen in ("egl", "osmesa"):
            os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
    return chosen


def _load(paths, robot, fps=None, fmt=None):
    from mjxmimic.motions.io import load_clip, load_dataset
    clips = []
    for p in paths:
        if Path(p).suffix.lower() in (".yaml", ".yml"):
            clips += list(load_dataset(p, robot).clips)
        else:
            clips.append(load_clip(p, robot, fps=fps, fmt=fmt))
    return clips


def clip_qpos(clips, robot, fps: float, loops: int = 1):
    """[(name, qpos [N, nq])] for each clip, sampled at ``fps`` for ``loops`` plays of it."""
    import jax.numpy as jnp
    import numpy as np

    from mjxmimic.motions.lib import build_motion_lib, sample

    lib = build_motion_lib(clips, robot)
    out = []
    for i, c in enumerate(clips):
        n = max(int(np.floor(c.duration * loops * fps + 1e-6)) + 1, 1)
        t = jnp.arange(n) / fps
        f = sample(lib, jnp.full(n, i), t)
        out.append((c.name, np.asarray(f.qpos(lib), np.float64)))
    return out


def camera(mujoco, lookat, distance=3.0, azimuth=135.0, elevation=-15.0):
    """A free ``mujoco.MjvCamera`` looking at ``lookat`` (m) from ``distance`` (m), angles in degrees."""
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.distance, cam.azimuth, cam.elevation = distance, azimuth, elevation
    cam.lookat[:] = lookat
    return cam


def _default_distance(robot) -> float:
    return max(1.5, 3.8 * float(robot.default_qpos[2]))  # ~3 m for G1, ~2 m for K1


_NOTED: set[str] = set()


class MeshRenderer:
    """A ``mujoco.Renderer`` for a simulated model that draws the robot with its vendor meshes.

    ``model`` is the robot's model or a scene that appends objects after it (the ball scene):
    the robot's qpos (a prefix of the scene's) poses the visual model, and the appended bodies'
    geoms are drawn from the simulated model and data. Same calls as ``mujoco.Renderer``:
    ``update_scene(data, camera)`` with the simulated data (after ``mj_forward``), ``scene``,
    ``render()``, ``close()``."""

    def __init__(self, model, visual, height: int, width: int):
        import copy

        import mujoco
        self._mj, self._visual, self._nq = mujoco, visual, visual.nq
        if not self.fits(model, visual):
            raise ValueError("MeshRenderer: the model does not start with the robot's bodies and qpos")
        self._vdata = mujoco.MjData(visual)
        self._r = mujoco.Renderer(visual, height, width)
        self._extra = None
        if model.nbody > visual.nbody:
            # the appended objects only (moving or static props): hide the robot's and the world's geoms of a copy
            self._extra = copy.copy(model)
            self._extra.geom_group[model.geom_bodyid < visual.nbody] = 5
            self._opt, self._pert = mujoco.MjvOption(), mujoco.MjvPerturb()

    @staticmethod
    def fits(model, visual) -> bool:
        """Whether ``model`` starts with the visual model's bodies and qpos (the robot, then objects)."""
        return model.nq >= visual.nq and model.nbody >= visual.nbody and all(
            model.body(i).name == visual.body(i).name for i in range(visual.nbody))

    @property
    def scene(self):
        return self._r.scene

    def update_scene(self, data, camera=-1, scene_option=None):
        mj = self._mj
        self._vdata.qpos[:] = data.qpos[: self._nq]
        mj.mj_forward(self._visual, self._vdata)
        self._r.update_scene(self._vdata, camera, scene_option)
        if self._extra is not None:
            mj.mjv_addGeoms(self._extra, data, self._opt, self._pert, mj.mjtCatBit.mjCAT_ALL, self._r.scene)

    def render(self, *args, **kwargs):
        return self._r.render(*args, **kwargs)

    def close(self):
        self._r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_renderer(model, robot, height: int, width: int, meshes=None):
    """A renderer for ``model`` (the robot's model or a scene appending objects after it):
    a :class:`MeshRenderer` with the vendor meshes when they are found, else ``mujoco.Renderer``
    (the collision primitives), saying so once per robot on stderr.

    ``meshes``: a mesh folder, ``"none"``, or None to look for one (:func:`mjxmimic.robots.visual.find_meshes`:
    ``$MJXMIMIC_MESHES``, then ``../shared/robots/<vendor>/meshes``)."""
    import mujoco

    from mjxmimic.robots.visual import find_meshes, visual_model
    try:
        mesh_dir, why = find_meshes(robot, meshes)
        visual = visual_model(robot.name, mesh_dir) if mesh_dir is not None else None
    except ValueError as e:   # MeshError, or a robot without a spec in robots/ (RobotSpecError)
        visual, why = None, str(e)
    if visual is not None and not MeshRenderer.fits(model, visual):
        raise ValueError(f"make_renderer: the model does not start with {robot.name}'s bodies and qpos")
    try:
        if visual is not None:
            return MeshRenderer(model, visual, height, width)
        if robot.name not in _NOTED and not why.endswith("=none"):
            _NOTED.add(robot.name)
            print(f"note: drawing {robot.name}'s collision primitives, not its meshes: {why} "
                  f"(set --meshes DIR or MJXMIMIC_MESHES)", file=sys.stderr)
        return mujoco.Renderer(model, height, width)
    except Exception as e:  # noqa: BLE001 - any GL failure gets the same advice
        raise RuntimeError(f"cannot create an OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {e}. "
                           f"Set MUJOCO_GL=egl or osmesa before importing mujoco (python -m mjxmimic.view does), "
                           f"or install libegl1/libosmesa6") from None


class _CvWriter:
    """mp4 through OpenCV (``cv2.VideoWriter``), opened at the first frame (it needs the size)."""

    def __init__(self, cv2, path: Path, fps: float):
        self._cv2, self._path, self._fps, self._w = cv2, path, fps, None

    @staticmethod
    def codecs_work(cv2, path: Path) -> str | None:
        """The first fourcc of avc1 (H.264), mp4v that this OpenCV build can write, or None."""
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for cc in ("avc1", "mp4v"):
                with _quiet_stderr():  # FFmpeg prints its failed encoder probes to fd 2
                    w = cv2.VideoWriter(str(Path(tmp) / f"probe{path.suffix}"), cv2.VideoWriter_fourcc(*cc),
                                        30.0, (64, 64))
                ok = w.isOpened()
                w.release()
                if ok:
                    return cc
        return None

    def append_data(self, frame):
        import numpy as np
        frame = np.ascontiguousarray(frame[..., :3])
        if self._w is None:
            cc = self.codecs_work(self._cv2, self._path)
            h, w = frame.shape[:2]
            with _quiet_stderr():
                self._w = self._cv2.VideoWriter(str(self._path), self._cv2.VideoWriter_fourcc(*cc), self._fps, (w, h))
        self._w.write(self._cv2.cvtColor(frame, self._cv2.COLOR_RGB2BGR))

    def close(self):
        if self._w is not None:
            self._w.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _quiet_stderr:
    """Silence file descriptor 2 (C libraries' messages) for a moment."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)


def video_writer(out, fps: float):
    """(path, writer) for a video of RGB uint8 frames (``writer.append_data(frame)``; a context
    manager). An mp4 at ``out`` through imageio-ffmpeg, else OpenCV; else a GIF beside it (the
    returned path ends in .gif) with a warning saying how to get mp4s."""
    import imageio.v2 as imageio

    out = Path(out)
    try:
        import imageio_ffmpeg
        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    else:
        # imageio-ffmpeg starts ffmpeg with preexec_fn=os.setpgrp (to keep Ctrl-C from it), which
        # makes subprocess fork() instead of spawning, and JAX warns about any fork of its threaded
        # process. Without it ffmpeg is spawned; it then also sees a Ctrl-C that ends the program.
        os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")
        return out, imageio.get_writer(out, fps=fps, codec="libx264", quality=7, macro_block_size=8,
                                       ffmpeg_log_level="error", format="FFMPEG")
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None and _CvWriter.codecs_work(cv2, out):
        return out, _CvWriter(cv2, out, fps)
    gif = out.with_suffix(".gif")
    print(f"warning: no mp4 encoder here (pip install imageio-ffmpeg, or opencv-python-headless: "
          f"pip install 'mjxmimic[video]'); writing {gif.name} instead", file=sys.stderr)
    return gif, imageio.get_writer(gif, duration=1000.0 / fps, loop=0)   # duration in ms


def default_out(clip, suffix: str = ".mp4") -> Path:
    """Where ``view`` writes without ``--out``: beside the clip (walk.npz -> walk.mp4), or
    ``runs/view/`` when the clip's folder is not writable or holds the package's own clips."""
    from mjxmimic.paths import MOTIONS_DIR, default_runs_dir

    clip = Path(clip).resolve()
    folder = clip.parent
    packaged = (folder.is_relative_to(MOTIONS_DIR.resolve())
                or folder.is_relative_to(Path(__file__).resolve().parent))
    if not packaged and os.access(folder, os.W_OK):
        return folder / (clip.stem + suffix)
    return default_runs_dir() / "view" / (clip.stem + suffix)


def write_video(out, fps: float, frames) -> Path:
    """Write the RGB frames of the iterable ``frames`` through :func:`video_writer` (an mp4 at
    ``out``, else a GIF beside it) into a temporary file first, so that an interrupted or failed
    render leaves no half video. Returns the file written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, w = video_writer(out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}"), fps)
    try:
        with w:
            for frame in frames:
                w.append_data(frame)
        out = out.with_suffix(tmp.suffix)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def render_video(clips, robot, out, fps: float = 30.0, width: int = 640, height: int = 480, loops: int = 1,
                 distance: float | None = None, meshes=None) -> tuple[Path, int]:
    """Render clips in sequence to an mp4 (a GIF where no encoder exists; see :func:`video_writer`).
    Needs a working MUJOCO_GL set before mujoco was imported (:func:`select_gl_backend`).
    ``meshes``: as :func:`make_renderer`. Returns (the file written, the number of frames)."""
    import mujoco
    import numpy as np

    out = Path(out)
    distance = distance or _default_distance(robot)
    seq = clip_qpos(clips, robot, fps, loops)
    m = robot.model
    d = mujoco.MjData(m)
    renderer = make_renderer(m, robot, height, width, meshes)
    n = 0

    def frames():
        nonlocal n
        look = None
        for _, qpos in seq:
            for q in qpos:
                d.qpos[:] = q
                mujoco.mj_forward(m, d)
                root = d.xpos[robot.root_body_id].copy()
                target = np.array([root[0], root[1], max(root[2] * 0.7, 0.3)])
                look = target if look is None else look + 0.2 * (target - look)  # smooth follow
                renderer.update_scene(d, camera=camera(mujoco, look, distance))
                yield renderer.render()
                n += 1

    try:
        out = write_video(out, fps, frames())
    finally:
        renderer.close()
    return out, n


def _add_target(mujoco, scene, pos, radius):
    """A flat green disc on the floor where the task's target is (not part of the model)."""
    import numpy as np

    if scene.ngeom >= scene.maxgeom:
        return
    p = np.array([pos[0], pos[1], 0.002])
    mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_CYLINDER, np.array([radius, 0.002, 0.0]),
                        p, np.eye(3).ravel(), np.array([0.1, 0.8, 0.2, 0.5], np.float32))
    scene.ngeom += 1


def follow_camera(model, robot, qpos, target=None):
    """[T, 3] look-at points of play's camera over a rollout ``qpos`` [T, model.nq]: 0.4 m above
    the robot's root (halfway to ``target`` [T, 3] when given, so that ball and target stay in
    view), smoothed (each frame moves a fifth of the way) so that the view does not shake."""
    import mujoco
    import numpy as np

    d = mujoco.MjData(model)
    root = robot.root_body_id
    look, out = None, np.zeros((len(qpos), 3))
    for t in range(len(qpos)):
        d.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, d)
        aim = np.array([d.xpos[root][0], d.xpos[root][1], 0.4])
        if target is not None:
            aim[:2] = 0.5 * (aim[:2] + target[t][:2])
        look = aim if look is None else look + 0.2 * (aim - look)
        out[t] = look
    return out


def rollout_camera(mujoco, look, target=None):
    """Play's camera at a :func:`follow_camera` point: 3 m away (4.5 m with a target), from the
    front left, 25 degrees down."""
    return camera(mujoco, look, 3.0 if target is None else 4.5, 120.0, -25.0)


def render_rollout(model, robot, qpos, out: Path, fps: float, ref_qpos=None, width=480, height=400,
                   stills: int = 4, target=None, target_radius: float = 0.2) -> Path:
    """Video of a simulated rollout ``qpos`` [T, model.nq] of ``model`` (the robot's, or a scene
    with the robot first), beside the reference ``ref_qpos`` [T, robot nq] when given, the camera
    following the robot (:func:`follow_camera`); ``target`` [T, 3]: a disc on the floor. ``stills`` frames go side by
    side into ``<out stem>_frames.png``. Returns the file written (see :func:`video_writer`)."""
    import imageio.v2 as imageio
    import mujoco
    import numpy as np

    panes = [(model, qpos)] + ([(robot.model, ref_qpos)] if ref_qpos is not None else [])
    rs = [(m, mujoco.MjData(m), make_renderer(m, robot, height, width)) for m, _ in panes]
    look = follow_camera(model, robot, qpos, target)
    picks = set(np.linspace(0, len(qpos) - 1, stills).astype(int).tolist()) if stills else set()
    kept = []

    def frames():
        for t in range(len(qpos)):
            panels = []
            for (m, d, r), (_, q) in zip(rs, panes):
                d.qpos[:] = q[t]
                mujoco.mj_forward(m, d)
                r.update_scene(d, camera=rollout_camera(mujoco, look[t], target))
                if target is not None and m is model:
                    _add_target(mujoco, r.scene, target[t], target_radius)
                panels.append(r.render())
            frame = np.concatenate(panels, axis=1)
            if t in picks:
                kept.append(frame)
            yield frame

    try:
        out = write_video(out, fps, frames())
        if kept:
            imageio.imwrite(out.with_name(out.stem + "_frames.png"), np.concatenate(kept, axis=0))
    finally:
        for _, _, r in rs:
            r.close()
    return out


def render_rows(model, robot, rows, out_png: Path, stills: int = 5, width: int = 320, height: int = 280,
                video: Path | None = None, fps: float = 30.0) -> tuple[Path, Path | None]:
    """A grid of stills: one row per rollout of ``rows`` [N, T, model.nq], ``stills`` frames
    evenly over time across it, each rollout with its own :func:`follow_camera`, into ``out_png``;
    with ``video`` also an mp4 of the N rollouts side by side. Returns (png, video written or None)."""
    import imageio.v2 as imageio
    import mujoco
    import numpy as np

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows)
    T = rows.shape[1]
    looks = [follow_camera(model, robot, q) for q in rows]
    picks = np.linspace(0, T - 1, stills).astype(int)
    d, r = mujoco.MjData(model), make_renderer(model, robot, height, width)

    def frame(i, t):
        d.qpos[:] = rows[i, t]
        mujoco.mj_forward(model, d)
        r.update_scene(d, camera=rollout_camera(mujoco, looks[i][t]))
        return r.render()

    try:
        grid = [np.concatenate([frame(i, t) for t in picks], axis=1) for i in range(len(rows))]
        imageio.imwrite(out_png, np.concatenate(grid, axis=0))
        if video is not None:
            video = write_video(video, fps, (np.concatenate([frame(i, t) for i in range(len(rows))], axis=1)
                                             for t in range(T)))
    finally:
        r.close()
    return out_png, video


def env_rollout(name, overrides=None):
    """(env, qpos [T, model.nq]) of one episode of config ``name``'s env from ``reset`` (key 0),
    stepped with zero actions until it ends (the ending step's state, already the next episode's,
    left out)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from mjxmimic.envs.registry import make_env
    env, params, _ = make_env(name, {**(overrides or {}), "env.num_envs": 1})

    def run(key):
        def body(s, _):
            return env.step(params, s, jnp.zeros(env.action_size)), (s.physics.qpos, s.done)
        return jax.lax.scan(body, env.reset(params, key), None, length=env.max_episode_steps)[1]
    qpos, done = jax.jit(run)(jax.random.PRNGKey(0))
    done = np.asarray(done)
    # done[t] is the state reached *into* step t; the episode's states are those before the first done
    ends = np.flatnonzero(done[1:])
    n = int(ends[0]) + 1 if ends.size else len(done)
    return env, np.asarray(qpos, np.float64)[:n]


def view_interactive(clips, robot, fps: float = 30.0, loops: int = 1, meshes=None):
    """Play clips in MuJoCo's passive viewer until the window is closed (with the vendor meshes
    when found: ``meshes`` as :func:`make_renderer`)."""
    import mujoco
    import mujoco.viewer

    from mjxmimic.robots.visual import MeshError, find_meshes, visual_model

    seq = clip_qpos(clips, robot, fps, loops)
    try:
        mesh_dir, _ = find_meshes(robot, meshes)
        m = visual_model(robot.name, mesh_dir) if mesh_dir is not None else robot.model
    except MeshError as e:
        print(f"note: drawing {robot.name}'s collision primitives: {e}", file=sys.stderr)
        m = robot.model
    d = mujoco.MjData(m)
    with mujoco.viewer.launch_passive(m, d) as v:
        v.cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        v.cam.trackbodyid = robot.root_body_id
        v.cam.distance = _default_distance(robot)
        while v.is_running():
            for name, qpos in seq:
                print(f"playing {name} ({len(qpos) / fps:.2f} s)")
                for q in qpos:
                    t0 = time.perf_counter()
                    d.qpos[:] = q
                    mujoco.mj_forward(m, d)
                    v.sync()
                    if not v.is_running():
                        return
                    time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - t0)))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless None or already described in its help)."""

    def _get_help_string(self, action):
        h = action.help or ""
        if action.default not in (None, argparse.SUPPRESS) and "default" not in h and action.option_strings:
            h += " (default: %(default)s)"
        return h


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.view", description=__doc__, formatter_class=_HelpFormatter)
    ap.add_argument("clips", nargs="*", help="motion files and/or dataset YAMLs (played in sequence)")
    ap.add_argument("--robot", help="robot name (robots/<name>/robot.yaml), e.g. k1 or g1 (needed with clips "
                                    "and --dof-test)")
    ap.add_argument("--env", help="instead of clips: a config (train --list-envs) whose env's episode is "
                                  "rendered, stepped with zero actions, e.g. k1_view_motion or k1_dof_test")
    ap.add_argument("--dof-test", action="store_true", help="the robot's DoF test: --env <robot>_dof_test")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="with --env: a config override, e.g. env.motion_file=my_clip.npz (repeatable)")
    ap.add_argument("--out", help="video file to write (default: beside the first clip, <clip>.mp4, or "
                                  "runs/view/<clip>.mp4 for the package's clips; without a display a video "
                                  "is always written, with one the interactive viewer opens instead)")
    ap.add_argument("--fps", type=float, default=30.0, help="video / playback rate")
    ap.add_argument("--loops", type=int, default=1, help="play each clip this many times")
    ap.add_argument("--width", type=int, default=640, help="video width (pixels)")
    ap.add_argument("--height", type=int, default=480, help="video height (pixels)")
    ap.add_argument("--distance", type=float, help="camera distance (m); default from the robot's height")
    ap.add_argument("--meshes", help="folder of the vendor's mesh files, or 'none' for the collision "
                                     "primitives; wins over $MJXMIMIC_MESHES (default: "
                                     "../shared/robots/<vendor>/meshes beside a checkout)")
    ap.add_argument("--in-fps", type=float, help="frame rate of CSV inputs")
    ap.add_argument("--fmt", choices=["mimickit", "gmr", "csv", "npz"], help="input format (default: from the suffix)")
    a = ap.parse_args(argv)
    if a.dof_test:
        if not a.robot or a.env:
            ap.error("--dof-test needs --robot (and no --env)")
        a.env = f"{a.robot}_dof_test"
    if a.env:
        if a.clips:
            ap.error("give clips or --env, not both")
        return _main_env(a)
    if not a.clips or not a.robot:
        ap.error("give clips and --robot, or --env NAME, or --dof-test --robot NAME")
    interactive = a.out is None and has_display()
    backend = select_gl_backend(interactive=interactive)   # before anything imports mujoco
    if backend is None:
        print("error: no OpenGL backend can render here (tried egl, osmesa); install libegl1 + libegl-mesa0 "
              "or libosmesa6, or set MUJOCO_GL", file=sys.stderr)
        return 3
    out = a.out or (None if interactive else default_out(a.clips[0]))

    from mjxmimic.motions.clip import MotionError
    from mjxmimic.robots import RobotSpecError, load_robot
    from mjxmimic.robots.visual import MeshError, find_meshes
    try:
        robot = load_robot(a.robot)
        if a.meshes and a.meshes.lower() != "none":
            find_meshes(robot, a.meshes)   # a folder asked for must work: fail before any rendering
        clips = _load(a.clips, robot, a.in_fps, a.fmt)
        if out is None:
            view_interactive(clips, robot, a.fps, a.loops, a.meshes)
            return 0
        if a.fps <= 0 or a.loops < 1 or a.width < 16 or a.height < 16:
            raise MotionError("--fps must be > 0, --loops >= 1, --width/--height >= 16")
        out, n = render_video(clips, robot, out, a.fps, a.width, a.height, a.loops, a.distance, a.meshes)
    except (MotionError, RobotSpecError, MeshError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {n} frames at {a.fps:g} fps ({len(clips)} clip(s), MUJOCO_GL={backend})")
    return 0


def _main_env(a) -> int:
    """``--env``: render one episode of a config's env to a video."""
    if select_gl_backend() is None:
        print("error: no OpenGL backend can render here (tried egl, osmesa); install libegl1 + libegl-mesa0 "
              "or libosmesa6, or set MUJOCO_GL", file=sys.stderr)
        return 3
    from mjxmimic.envs.registry import ConfigError, parse_overrides
    from mjxmimic.paths import default_runs_dir
    out = Path(a.out) if a.out else default_runs_dir() / "view" / f"{a.env}.mp4"
    try:
        env, qpos = env_rollout(a.env, parse_overrides(a.overrides))
        out = render_rollout(env.model, env.robot, qpos, out, fps=1.0 / env.control_dt, width=a.width,
                             height=a.height, stills=0)
    except (ConfigError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(qpos)} frames at {1.0 / env.control_dt:g} fps (env {a.env}, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
