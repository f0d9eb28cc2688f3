#!/bin/sh
# Installs mjxmimic in a container image being built (Dockerfile RUN, mjxmimic.def %post): a venv
# in /opt/venv with JAX ($1, default jax[cuda12]) and the project from /opt/mjxmimic/src with its
# deploy extra (export, sim2sim); the EGL/OSMesa libraries MuJoCo renders videos with; the
# entrypoint as /usr/local/bin/mjxmimic. Needs a Debian-based image with python3 (>= 3.11).
set -eu
jax=${1:-jax[cuda12]}
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends libegl1 libgl1 libosmesa6
# Debian's own python3 needs python3-venv; the python:*-slim images have venv built in.
python3 -m venv --help >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends python3-venv
rm -rf /var/lib/apt/lists/*
python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir -q "$jax" "/opt/mjxmimic/src[deploy]"
install -m 755 /opt/mjxmimic/src/cluster/entrypoint.sh /usr/local/bin/mjxmimic
