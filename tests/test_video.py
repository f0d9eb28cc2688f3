"""video_writer: imageio-ffmpeg, else OpenCV, else a GIF; each read back."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from mjxmimic import view


def _frames(n=7, h=48, w=64):
    # a bright square moving right over a dark background: easy to recognise after lossy coding
    out = np.full((n, h, w, 3), 20, np.uint8)
    for i in range(n):
        out[i, 12:36, 4 + 6 * i: 20 + 6 * i] = (230, 40, 40)
    return out


def _write(out, frames, fps=10.0):
    path, w = view.video_writer(out, fps)
    with w:
        for f in frames:
            w.append_data(f)
    return path


def test_opencv_mp4_when_imageio_ffmpeg_is_missing(tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)   # import fails: the OpenCV path
    frames = _frames()
    path = _write(tmp_path / "v.mp4", frames)
    assert path == tmp_path / "v.mp4" and path.stat().st_size > 0
    cap = cv2.VideoCapture(str(path))
    got = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        got.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(got) == len(frames) and got[0].shape == frames[0].shape
    # colours survive (RGB, not BGR): the square is red where it was drawn
    assert got[3][24, 32, 0] > 150 and got[3][24, 32, 2] < 100


def test_gif_with_a_warning_when_no_mp4_encoder(tmp_path, monkeypatch, capsys):
    import imageio.v3 as iio
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    frames = _frames(5)
    path = _write(tmp_path / "v.mp4", frames, fps=20.0)
    assert path == tmp_path / "v.gif" and not (tmp_path / "v.mp4").exists()
    assert "pip install" in capsys.readouterr().err
    back = iio.imread(path)
    assert back.shape[:3] == (5, 48, 64)
    assert iio.immeta(path, index=1)["duration"] == 50   # ms per frame at 20 fps


def test_ffmpeg_mp4_first(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio
    path = _write(tmp_path / "v.mp4", _frames())
    assert path.suffix == ".mp4"
    assert iio.imread(path).shape == (7, 48, 64, 3)
