"""A hook for the training processes tests/test_train_resume.py starts (this folder is on their PYTHONPATH only).

With VTPOSE_TEST_HOLD_AFTER_EPOCH=N, the process stops for good once the checkpoint of epoch N is saved: it writes
VTPOSE_TEST_HOLD_MARKER and waits to be killed. Epoch N+1 cannot begin before the test kills it, however fast the
machine, so the test always interrupts the run exactly after epoch N's checkpoint.
"""

from __future__ import annotations

import os

_HOLD_AFTER = os.environ.get("VTPOSE_TEST_HOLD_AFTER_EPOCH")

if _HOLD_AFTER:
    import threading
    from pathlib import Path
    from typing import Any

    from vtpose.training.train import TrainingCheckpoints

    _save = TrainingCheckpoints.save

    def _save_then_hold(self: TrainingCheckpoints, save_dir: Path, epoch: int, epochs: int) -> Any:
        checkpoint = _save(self, save_dir, epoch, epochs)
        if epoch == int(_HOLD_AFTER):
            Path(os.environ["VTPOSE_TEST_HOLD_MARKER"]).write_text(str(epoch))
            threading.Event().wait()  # until SIGKILL
        return checkpoint

    TrainingCheckpoints.save = _save_then_hold  # type: ignore[method-assign]
