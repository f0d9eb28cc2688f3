"""Motion data at run time: the Clip model, file formats, the jit-able MotionLib, host FK.
The offline tools (authoring, IK, retargeting, cleaning) are :mod:`mjxmimic.tools`.

    from mjxmimic.motions import load_clip, load_motion_lib, sample
"""
from mjxmimic.motions.clip import Clip, MotionError
from mjxmimic.motions.io import load_clip, load_dataset, map_joints, save_clip
from mjxmimic.motions.lib import (MotionFrame, MotionLib, build_motion_lib, load_motion_lib, motion_phase, sample,
                                  sample_mjx, sample_motions, sample_times)

__all__ = ["Clip", "MotionError", "load_clip", "save_clip", "load_dataset", "map_joints", "MotionLib", "MotionFrame",
           "build_motion_lib", "load_motion_lib", "sample", "sample_mjx", "sample_motions", "sample_times",
           "motion_phase"]
