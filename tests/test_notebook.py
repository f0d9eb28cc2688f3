"""examples/quickstart.ipynb runs top to bottom (nbclient) and trains."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store the notebook without outputs"
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")   # the kernel inherits the environment
    # LLVM's cheap optimisation level: compiling the env step and the PPO iteration takes ~40% less CPU
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    final = float(re.search(r"final reward_mean (\S+)", text).group(1))
    assert math.isfinite(final) and final >= 0.0          # DeepMimic rewards are sums of exp(-err) terms
    first, last = map(float, re.search(r"critic_loss (\S+) -> (\S+)", text).groups())
    assert math.isfinite(first) and math.isfinite(last) and first != last
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 1                                # the reward plot
    assert len(images) == 2 or "skipped" in text           # and the frame, unless no GL backend
