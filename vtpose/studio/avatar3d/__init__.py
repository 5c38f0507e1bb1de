"""3D avatars: VRM humanoids generated from the avatar definitions, the VRM file check, and the pose-to-bones solver.

- `skeleton`: the humanoid bones, their parents and the rest T-pose (one home for the 3D proportions).
- `shapes`: the closed meshes the generator builds avatars from.
- `generate`: VRM 1.0 files from the 2D YAML avatars (`python -m vtpose.studio.avatar3d.generate`).
- `vrm_file`: `check_vrm`, what the studio accepts as a VRM (0.x or 1.0).
- `solver`: COCO-17 keypoints (and the 2D rig) -> the normalized humanoid bones' rotations, per track.
"""

from __future__ import annotations
