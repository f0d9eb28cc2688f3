"""Watch motion clips on a robot: an mp4 (headless) or MuJoCo's interactive viewer.

    python -m mjxmimic.view CLIP [CLIP ...] --robot k1 [--out x.mp4] [--fps 30] [--loops 2]

CLIP is any file :func:`mjxmimic.motions.io.load_clip` reads, or a dataset YAML (its clips
play in sequence). Frames are sampled from a MotionLib exactly as training sees them
(interpolation, wrap offsets of looping clips).

With ``--out`` (or when there is no display) the video is rendered offscreen with
``mujoco.Renderer``. The OpenGL backend is picked before mujoco is imported: ``MUJOCO_GL``
if set, else the first of egl, osmesa that can render here (probed in a subprocess);
``glfw`` when a display exists and the interactive viewer is wanted. Headless machines
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

__all__ = ["select_gl_backend", "gl_backend_works", "clip_qpos", "render_video", "view_interactive", "main"]

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


def _camera(mujoco, lookat, distance=3.0, azimuth=135.0, elevation=-15.0):
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.distance, cam.azimuth, cam.elevation = distance, azimuth, elevation
    cam.lookat[:] = lookat
    return cam


def _default_distance(robot) -> float:
    return max(1.5, 3.8 * float(robot.default_qpos[2]))  # ~3 m for G1, ~2 m for K1


def render_video(clips, robot, out, fps: float = 30.0, width: int = 640, height: int = 480, loops: int = 1,
                 distance: float | None = None) -> int:
    """Render clips in sequence to an mp4 (needs a working MUJOCO_GL set before mujoco was
    imported: see :func:`select_gl_backend`). Returns the number of frames written."""
    import imageio.v2 as imageio
    import mujoco
    import numpy as np

    # ffmpeg runs as a subprocess after JAX started its threads: harmless here (exec follows fork)
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
    out = Path(out)
    distance = distance or _default_distance(robot)
    seq = clip_qpos(clips, robot, fps, loops)
    m = robot.model
    d = mujoco.MjData(m)
    try:
        renderer = mujoco.Renderer(m, height, width)
    except Exception as e:  # noqa: BLE001 - any GL failure gets the same advice
        raise RuntimeError(f"cannot create an OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {e}. "
                           f"Set MUJOCO_GL=egl or osmesa before importing mujoco (python -m mjxmimic.view does), "
                           f"or install libegl1/libosmesa6") from None
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    n = 0
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=8,
                                ffmpeg_log_level="error", format="FFMPEG") as w:
            look = None
            for _, qpos in seq:
                for q in qpos:
                    d.qpos[:] = q
                    mujoco.mj_forward(m, d)
                    root = d.xpos[robot.root_body_id].copy()
                    target = np.array([root[0], root[1], max(root[2] * 0.7, 0.3)])
                    look = target if look is None else look + 0.2 * (target - look)  # smooth follow
                    renderer.update_scene(d, camera=_camera(mujoco, look, distance))
                    w.append_data(renderer.render())
                    n += 1
        os.replace(tmp, out)
    finally:
        renderer.close()
        if tmp.exists():
            tmp.unlink()
    return n


def view_interactive(clips, robot, fps: float = 30.0, loops: int = 1):
    """Play clips in MuJoCo's passive viewer until the window is closed."""
    import mujoco
    import mujoco.viewer

    seq = clip_qpos(clips, robot, fps, loops)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.view", description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+", help="motion files and/or dataset YAMLs (played in sequence)")
    ap.add_argument("--robot", required=True)
    ap.add_argument("--out", help="write an mp4 here (default when there is no display: <first clip>.mp4)")
    ap.add_argument("--fps", type=float, default=30.0, help="video / playback rate")
    ap.add_argument("--loops", type=int, default=1, help="play each clip this many times")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--distance", type=float, help="camera distance (m); default from the robot's height")
    ap.add_argument("--in-fps", type=float, help="frame rate of CSV inputs")
    ap.add_argument("--fmt", choices=["mimickit", "gmr", "csv", "npz"])
    a = ap.parse_args(argv)
    interactive = a.out is None and has_display()
    out = a.out or (None if interactive else f"{Path(a.clips[0]).stem}.mp4")
    backend = select_gl_backend(interactive=interactive)
    if backend is None:
        print("error: no OpenGL backend can render here (tried egl, osmesa); install libegl1 + libegl-mesa0 "
              "or libosmesa6, or set MUJOCO_GL", file=sys.stderr)
        return 3

    from mjxmimic.motions.clip import MotionError
    from mjxmimic.robots import RobotSpecError, load_robot
    try:
        robot = load_robot(a.robot)
        clips = _load(a.clips, robot, a.in_fps, a.fmt)
        if out is None:
            view_interactive(clips, robot, a.fps, a.loops)
            return 0
        if a.fps <= 0 or a.loops < 1 or a.width < 16 or a.height < 16:
            raise MotionError("--fps must be > 0, --loops >= 1, --width/--height >= 16")
        n = render_video(clips, robot, out, a.fps, a.width, a.height, a.loops, a.distance)
    except (MotionError, RobotSpecError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {n} frames at {a.fps:g} fps ({len(clips)} clip(s), MUJOCO_GL={backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
