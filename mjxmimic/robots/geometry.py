"""Ground clearance of primitive collision geoms (sphere, capsule, box), in JAX.

Used to place a pose on the floor, to measure penetration in motion clips and to
detect falls without asking the contact solver about pairs it never tests.
"""
from __future__ import annotations

import itertools

import jax.numpy as jnp
import mujoco
import numpy as np

_SPHERE, _CAPSULE, _BOX = (int(mujoco.mjtGeom.mjGEOM_SPHERE), int(mujoco.mjtGeom.mjGEOM_CAPSULE),
                           int(mujoco.mjtGeom.mjGEOM_BOX))
_CORNERS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))


def geom_min_z(geom_type: np.ndarray, size: np.ndarray, xpos, xmat):
    """Lowest world z of each geom.

    geom_type, size: static per-geom numpy arrays [G], [G, 3]; xpos [..., G, 3]; xmat [..., G, 3, 3]
    (MuJoCo's geom_xpos / geom_xmat). Other geom types get +inf.
    """
    geom_type = np.asarray(geom_type)
    size = jnp.asarray(size)
    zrow = xmat[..., 2, :]  # world z of each local axis
    sphere = xpos[..., 2] - size[:, 0]
    capsule = xpos[..., 2] - jnp.abs(zrow[..., 2]) * size[:, 1] - size[:, 0]
    # box: min over corners of centre_z + sum_i zrow_i * s_i * corner_i
    corner_z = jnp.einsum("...gi,ci,gi->...gc", zrow, jnp.asarray(_CORNERS), size)
    box = xpos[..., 2] + corner_z.min(axis=-1)
    out = jnp.where(geom_type == _SPHERE, sphere, jnp.inf)
    out = jnp.where(geom_type == _CAPSULE, capsule, out)
    return jnp.where(geom_type == _BOX, box, out)
