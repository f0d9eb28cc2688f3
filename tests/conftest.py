"""Fixtures shared by the test modules (``load_robot`` caches, so these are cheap)."""
import os

# Most of the suite's time is XLA compiling MJX programs for the CPU; LLVM's optimisation passes
# are most of that, and the tests' tiny batches barely feel the slower code. Set before JAX starts
# its backend; subprocesses inherit it. A flag the caller set wins. XLA's older CPU code generation
# (no "fusion emitters") compiles the same HLO faster here: k1_walk's training iteration 40 s
# instead of 51 s, tests/test_amp_learning.py 40 s instead of 56 s (side by side, shared 2 cores).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                      "--xla_cpu_use_fusion_emitters=false")
# Several tests (and the CLIs they start as subprocesses) compile the same programs, e.g. a run's
# training iteration again when it is resumed: JAX's persistent compilation cache, in a folder of
# this test session only, compiles each once. A cache dir the caller set wins.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile
    _cache = tempfile.mkdtemp(prefix="mjxmimic-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache

import pytest  # noqa: E402

from mjxmimic.robots import load_robot


@pytest.fixture(scope="module")
def k1():
    return load_robot("k1")


@pytest.fixture(scope="module")
def g1():
    return load_robot("g1")
