"""Data parallelism: the envs split over two (simulated CPU) devices train like one device.

JAX fixes its device count at start-up, so the checks run in a fresh process
(tests/parallel_check.py) with ``--xla_force_host_platform_device_count=2``."""
import os
import subprocess
import sys
from pathlib import Path


def test_two_devices_train_like_one():
    script = Path(__file__).with_name("parallel_check.py")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), (r.stdout + r.stderr)[-3000:]
