"""Resumable checkpoints of one training, kept in a folder of any ZenML filesystem (in the pipeline: the artifact
store), so a training interrupted on one machine resumes on another from its last complete epoch.

`checkpoint_key` names the folder: equal for a rerun of the same training, different otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtpose.training.train import TrainConfig

logger = logging.getLogger(__name__)

# TrainConfig fields that do not change what is trained, so not part of a checkpoint key: a preempted GPU run
# may resume on another device, or checkpoint at another period.
CHECKPOINT_KEY_EXCLUDES = frozenset({"device", "save_period"})
# The file of a checkpoint folder that names its complete files; written last, so a reader never sees half a set.
CHECKPOINT_MANIFEST = "checkpoint.json"


def checkpoint_key(config: TrainConfig, inputs: Mapping[str, str]) -> str:
    """The key of a training's checkpoints: equal for a rerun of the same training, different otherwise.

    Args:
        config: the training config (fields in CHECKPOINT_KEY_EXCLUDES left out).
        inputs: a content hash per input, by name (the dataset, the pretrained checkpoint).

    Returns:
        Hex sha256 over both and the Ultralytics version (whose trainer writes and resumes the checkpoints).
    """
    from ultralytics import __version__ as ultralytics_version

    content = {
        "config": config.model_dump(mode="json", exclude=set(CHECKPOINT_KEY_EXCLUDES)),
        "inputs": dict(sorted(inputs.items())),
        "ultralytics": ultralytics_version,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One complete, resumable checkpoint set, as its manifest names it.

    Attributes:
        epoch: epochs completed when it was written (1-based).
        epochs: epochs the training was configured for.
        last: file name of Ultralytics' `last.pt` (with optimizer state: what resume loads).
        best: file name of `best.pt`, or None.
        results: file name of `results.csv` (the curves so far), or None.
    """

    epoch: int
    epochs: int
    last: str
    best: str | None = None
    results: str | None = None


class TrainingCheckpoints:
    """Resumable checkpoints of one training in a folder of any ZenML filesystem (in the pipeline: the artifact store).

    Every file is written to a temporary name and renamed into place, then the manifest (`checkpoint.json`) is
    replaced the same way, naming the new set; files it does not name are removed after. A reader trusts only
    the manifest, so a process killed at any moment leaves either the previous set or the new one, never half.

    Args:
        uri: the folder, e.g. `<artifact store>/checkpoints/train_model/<checkpoint_key>`.
        save_period: checkpoint after every this many epochs (never after the last one: that one is the result).
    """

    def __init__(self, uri: str, save_period: int = 1) -> None:
        if save_period < 1:
            raise ValueError(f"save_period={save_period} must be at least 1")
        self.uri = uri.rstrip("/")
        self.save_period = save_period
        self._uploaded_best: tuple[int, int] | None = None
        self._best_name: str | None = None

    def _path(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def latest(self) -> Checkpoint | None:
        """The last complete checkpoint, or None when there is none (or its manifest is unreadable)."""
        from zenml.io import fileio

        manifest = self._path(CHECKPOINT_MANIFEST)
        if not fileio.exists(manifest):
            return None
        with fileio.open(manifest, "r") as f:
            try:
                checkpoint = Checkpoint(**json.loads(f.read()))
            except (ValueError, TypeError) as error:
                logger.warning("%s: unreadable checkpoint manifest (%s); training starts over.", manifest, error)
                return None
        self._best_name = checkpoint.best
        return checkpoint

    def restore(self, checkpoint: Checkpoint, save_dir: Path) -> Path:
        """Copy a checkpoint set into an Ultralytics run folder, where `resume` expects it.

        Args:
            checkpoint: from `latest()`.
            save_dir: the run folder (`weights/last.pt`, `weights/best.pt`, `results.csv` go there).

        Returns:
            The local `last.pt` to resume from.
        """
        from zenml.io import fileio

        weights = save_dir / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        fileio.copy(self._path(checkpoint.last), str(weights / "last.pt"), overwrite=True)
        if checkpoint.best:
            fileio.copy(self._path(checkpoint.best), str(weights / "best.pt"), overwrite=True)
            self._uploaded_best = _stamp(weights / "best.pt")
        if checkpoint.results:
            fileio.copy(self._path(checkpoint.results), str(save_dir / "results.csv"), overwrite=True)
        return weights / "last.pt"

    def save(self, save_dir: Path, epoch: int, epochs: int) -> Checkpoint:
        """Store the run folder's current `last.pt` (and `best.pt`, `results.csv`) as the latest checkpoint.

        Args:
            save_dir: the Ultralytics run folder.
            epoch: epochs completed (1-based).
            epochs: epochs configured.

        Returns:
            The checkpoint now named by the manifest.
        """
        from zenml.io import fileio

        fileio.makedirs(self.uri)
        last = self._put(save_dir / "weights" / "last.pt", f"last-e{epoch}.pt")
        best_file = save_dir / "weights" / "best.pt"
        if best_file.is_file() and _stamp(best_file) != self._uploaded_best:
            self._best_name = self._put(best_file, f"best-e{epoch}.pt")
            self._uploaded_best = _stamp(best_file)
        results_file = save_dir / "results.csv"
        results = self._put(results_file, f"results-e{epoch}.csv") if results_file.is_file() else None
        checkpoint = Checkpoint(epoch=epoch, epochs=epochs, last=last, best=self._best_name, results=results)
        tmp = self._path(f".tmp-{uuid.uuid4().hex}-{CHECKPOINT_MANIFEST}")
        with fileio.open(tmp, "w") as f:
            f.write(json.dumps(checkpoint.__dict__, indent=2))
        fileio.rename(tmp, self._path(CHECKPOINT_MANIFEST), overwrite=True)
        keep = {CHECKPOINT_MANIFEST, last, self._best_name, results}
        for name in fileio.listdir(self.uri):
            if str(name) not in keep:
                fileio.remove(self._path(str(name)))
        logger.info("Checkpoint of epoch %d/%d saved to %s", epoch, epochs, self.uri)
        return checkpoint

    def clear(self) -> None:
        """Remove the folder: the training finished, nothing is left to resume."""
        from zenml.io import fileio

        if fileio.exists(self.uri):
            fileio.rmtree(self.uri)

    def on_model_save(self, trainer: Any) -> None:
        """Ultralytics callback (`on_model_save`, after `last.pt` is written): checkpoint every `save_period` epochs."""
        epoch = trainer.epoch + 1
        if epoch < trainer.epochs and epoch % self.save_period == 0:
            self.save(Path(trainer.save_dir), epoch, trainer.epochs)

    def _put(self, local: Path, name: str) -> str:
        from zenml.io import fileio

        tmp = self._path(f".tmp-{uuid.uuid4().hex}-{name}")
        fileio.copy(str(local), tmp, overwrite=True)
        fileio.rename(tmp, self._path(name), overwrite=True)
        return name


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
