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


def test_compile_cache_only_on_accelerators(tmp_path, monkeypatch):
    """GPU/TPU runs keep compiled iterations in a persistent cache (JAX's own setting wins);
    CPU runs (the test suite, the CPU quick start) leave JAX's config alone."""
    import jax

    from mjxmimic import paths
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("MJXMIMIC_CACHE", str(tmp_path / "c"))
    assert paths.enable_compile_cache("cpu") is None and jax.config.jax_compilation_cache_dir == before
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "j"))
    assert paths.enable_compile_cache("gpu") == tmp_path / "j"
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.delenv("MJXMIMIC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.compile_cache_dir() == tmp_path / "x" / "mjxmimic" / "jax"
    try:
        assert paths.enable_compile_cache("gpu") == tmp_path / "x" / "mjxmimic" / "jax"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "x" / "mjxmimic" / "jax")
        assert (tmp_path / "x" / "mjxmimic" / "jax").is_dir()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
