"""A wheel (non-editable install) carries the robot models, reference clips and configs."""
import subprocess
import sys
import zipfile

import pytest

from mjxmimic.paths import REPO_ROOT


@pytest.mark.slow
def test_wheel_carries_assets(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO_ROOT)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("mjxmimic-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for robot in ("k1", "g1"):
        for f in ("robot.yaml", f"{robot}.xml", "LICENSE"):
            assert f"mjxmimic/assets/robots/{robot}/{f}" in names
        for f in ("walk.npz", "kick_left.npz", "locomotion.yaml", "kick.yaml"):
            assert f"mjxmimic/assets/motions/{robot}/{f}" in names
    assert "mjxmimic/assets/configs/k1_kick.yaml" in names and "mjxmimic/envs/kick.py" in names
    for f in ("tools/author.py", "tools/retarget.py", "motions/fk.py", "motions/clean.py", "io_util.py"):
        assert f"mjxmimic/{f}" in names, f  # the tools package and the old CLI names ship too
