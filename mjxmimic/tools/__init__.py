"""Offline motion tools: authoring reference clips (``author``, ``ik``), retargeting human and
robot motion (``retarget``, ``bvh``, ``smpl``, ``source``), cleaning video-derived clips
(``clean``), plausibility checks (``plausibility``), synthetic test clips (``synthetic``) and clips
recorded from a tracking policy in simulation (``record``).

Training never imports this package: what runtime and tools share lives in
:mod:`mjxmimic.motions` (clip model, readers/writers, resampling, frame kinematics).

    python -m mjxmimic.tools.author --all
    python -m mjxmimic.tools.clean IN.csv OUT.npz --robot k1 --in-fps 30 --report
    python -m mjxmimic.tools.retarget walk.bvh --robot k1 --out walk_k1.npz
    python -m mjxmimic.tools.plausibility motions/k1/*.npz --robot k1
    python -m mjxmimic.tools.record runs/k1_track --out motions/k1_sim
"""
