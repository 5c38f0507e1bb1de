"""vtpose: human pose estimation from training pipeline to vtuber studio."""

from __future__ import annotations

import os

# Ultralytics checks connectivity and reports usage unless told not to; this machine, CI and many
# clusters have no route out, and a user's data should not leave theirs. Set before any import of it.
os.environ.setdefault("YOLO_OFFLINE", "1")

__version__ = "0.1.0"

# Artifacts stored by an older vtpose name their types by the modules' old paths (see legacy_paths).
from vtpose import legacy_paths

legacy_paths.install()
