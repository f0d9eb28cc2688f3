"""mjxmimic: motion imitation (DeepMimic, AMP) for humanoid robots in JAX on MuJoCo MJX."""
import contextlib as _contextlib
import io as _io

# MJX prints "Failed to import warp/mujoco_warp" when its optional Warp backend is absent; we use
# its JAX implementation, so that line only worries users. Anything else it prints is passed on.
_buf = _io.StringIO()
with _contextlib.redirect_stdout(_buf):
    from mujoco import mjx as _mjx  # noqa: F401
print("".join(line for line in _buf.getvalue().splitlines(keepends=True)
              if not line.startswith(("Failed to import warp", "Failed to import mujoco_warp"))), end="")
del _buf
