"""A training config in, weights and curves out, with Ultralytics YOLO-pose underneath."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path
from vtpose.training.reports import TrainingCurves

# Arguments vtpose decides itself: where runs go, and integrations that would phone home or open a second
# MLflow run (ZenML's MLflow tracker owns the run).
RESERVED_ARGS = frozenset({"data", "project", "name", "exist_ok", "model", "mode", "task"})
ARCHITECTURE_SUFFIXES = (".pt", ".yaml", ".yml")
# `train.model` value meaning "fine-tune the pipeline's pretrained checkpoint artifact".
PRETRAINED_MODEL = "pretrained"
# TrainConfig fields that do not change what is trained, so not part of a checkpoint key: a preempted GPU run
# may resume on another device, or checkpoint at another period.
CHECKPOINT_KEY_EXCLUDES = frozenset({"device", "save_period"})
# The file of a checkpoint folder that names its complete files; written last, so a reader never sees half a set.
CHECKPOINT_MANIFEST = "checkpoint.json"

logger = logging.getLogger(__name__)


def ultralytics_train_args() -> dict[str, Any]:
    """Every argument Ultralytics' trainer accepts, with its default."""
    from ultralytics.cfg import get_cfg

    return dict(vars(get_cfg()))


def configure_ultralytics() -> None:
    """Turn off Ultralytics' MLflow callback and usage reporting (settings are per user, so set them each time)."""
    from ultralytics import settings

    wanted = {"mlflow": False, "sync": False, "tensorboard": False, "wandb": False, "clearml": False, "comet": False}
    if any(settings.get(key) != value for key, value in wanted.items()):
        settings.update(wanted)


def auto_device() -> str:
    """All visible CUDA GPUs ("0" or "0,1,..."), else "cpu"."""
    import torch

    count = torch.cuda.device_count()
    return ",".join(str(i) for i in range(count)) if count else "cpu"


class TrainConfig(BaseModel):
    """What to train and how. Unknown keys are errors, so a typo in the YAML cannot pass silently.

    Attributes:
        model: "pretrained" to fine-tune the pipeline's pretrained checkpoint (data.pretrained), a `.pt` file,
            or a model YAML to train from scratch: a file, or a name Ultralytics ships (yolo11n-pose.yaml,
            yolov8s-pose.yaml...).
        transfer_pretrained: with a YAML model, start from the pretrained checkpoint's weights where shapes match.
        epochs, imgsz, batch, seed: the usual; `seed` is fixed so a run is repeatable.
        device: "auto" (all visible GPUs, else CPU), "cpu", "0", "0,1"...
        freeze_batchnorm: keep every BatchNorm layer's running statistics from pretraining. Fine-tuning on a
            few hundred images otherwise re-estimates them from small, augmented batches, which alone costs the
            pretrained model about 0.01 AP here before any weight changes.
        save_period: write a resumable checkpoint every this many epochs (to the artifact store, in the
            pipeline), so an interrupted training resumes there. Not Ultralytics' `args.save_period`, which keeps
            numbered local copies.
        args: any other Ultralytics training argument (lr0, freeze, mosaic, optimizer...), checked by name.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = PRETRAINED_MODEL
    transfer_pretrained: bool = False
    epochs: int = Field(10, ge=1)
    imgsz: int = Field(640, ge=32, multiple_of=32)
    batch: int = Field(16, ge=1)
    seed: int = 0
    device: str = "auto"
    freeze_batchnorm: bool = False
    save_period: int = Field(1, ge=1)
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_kind(cls, value: str) -> str:
        if value != PRETRAINED_MODEL and not value.endswith(ARCHITECTURE_SUFFIXES):
            raise ValueError(
                f"model={value!r} must be {PRETRAINED_MODEL!r}, a .pt checkpoint or a model .yaml "
                "(e.g. yolo11n-pose.yaml)"
            )
        return value

    @field_validator("args")
    @classmethod
    def _known_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = ultralytics_train_args()
        for key in value:
            if key in RESERVED_ARGS:
                raise ValueError(f"train.args.{key} is set by vtpose itself; remove it from the config")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"train.args.{key} is not an Ultralytics training argument{hint}")
        return value

    def architecture(self, pretrained: Path | None = None) -> str:
        """A short name of the architecture, e.g. "yolo11n-pose"."""
        if self.model == PRETRAINED_MODEL:
            return pretrained.stem if pretrained else PRETRAINED_MODEL
        return Path(self.model).stem

    def model_source(self, pretrained: Path | None = None) -> str:
        """The model to hand to `YOLO(...)`: the pretrained checkpoint, a project file, or a name Ultralytics ships."""
        if self.model == PRETRAINED_MODEL:
            if pretrained is None or not pretrained.is_file():
                raise VtposeError(f"train.model is {PRETRAINED_MODEL!r} but no pretrained checkpoint was given.")
            return str(pretrained)
        if self.model.endswith(".pt"):
            path = resolve_project_path(self.model)
            if not path.is_file():
                raise VtposeError(
                    f"{path}: checkpoint not found; run `dvc pull` for data/, or set train.model to a file or a "
                    "model YAML such as yolo11n-pose.yaml (nothing is downloaded)."
                )
            return str(path)
        path = resolve_project_path(self.model)
        if path.is_file():
            return str(path)
        from ultralytics.nn.tasks import yaml_model_load

        try:
            # Resolves scaled names (yolo11n-pose.yaml -> cfg/models/11/yolo11-pose.yaml with scale n).
            yaml_model_load(self.model)
        except FileNotFoundError as error:
            raise VtposeError(
                f"train.model={self.model!r}: no such model YAML here or in Ultralytics' cfg/models; "
                "use e.g. yolo11n-pose.yaml or yolov8n-pose.yaml."
            ) from error
        return self.model

    def ultralytics_args(self, pretrained: Path | None = None) -> dict[str, Any]:
        """The keyword arguments for `YOLO.train`, minus data and output locations."""
        device = auto_device() if self.device == "auto" else self.device
        args: dict[str, Any] = {
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "seed": self.seed,
            "deterministic": True,
            "device": device,
            # Plots fetch a font from the internet on first use; curves are drawn by vtpose.training.reports instead.
            "plots": False,
        }
        if self.transfer_pretrained and self.model != PRETRAINED_MODEL:
            if pretrained is None:
                raise VtposeError("train.transfer_pretrained is set but no pretrained checkpoint was given.")
            args["pretrained"] = str(pretrained)
        args.update(self.args)
        return args


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


@dataclass
class TrainResult:
    """Where training left its outputs.

    Attributes:
        best_weights: the checkpoint with the best validation fitness (or the last, when validation is off).
        last_weights: the final checkpoint.
        curves: per-epoch losses and metrics (every epoch, also those done before a resume).
        resumed_from_epoch: epochs completed by an interrupted attempt this run resumed from; 0 if none.
    """

    best_weights: Path
    last_weights: Path
    curves: TrainingCurves
    resumed_from_epoch: int = 0


def train(
    config: TrainConfig,
    data_yaml: Path,
    out_dir: Path,
    pretrained: Path | None = None,
    checkpoints: TrainingCheckpoints | None = None,
) -> TrainResult:
    """Train a YOLO-pose model, resuming from the latest checkpoint if an earlier attempt was interrupted.

    Args:
        config: the training config.
        data_yaml: an Ultralytics dataset YAML with `kpt_shape: [17, 3]`.
        out_dir: a folder for the run (Ultralytics writes `out_dir/train/...`).
        pretrained: the pretrained checkpoint, for `model: pretrained` and `transfer_pretrained`.
        checkpoints: where to keep resumable checkpoints (every `config.save_period` epochs) and to look for
            one to resume from (Ultralytics' own resume: weights, optimizer, EMA, epoch, curves). Cleared once
            training has finished. None: no checkpoints.

    Raises:
        VtposeError: the model or data cannot be found.
    """
    from ultralytics import YOLO

    configure_ultralytics()
    if not data_yaml.is_file():
        raise VtposeError(f"{data_yaml}: dataset YAML not found; convert the dataset first.")
    save_dir = out_dir / "train"
    args = config.ultralytics_args(pretrained)
    resume_from = checkpoints.latest() if checkpoints else None
    if checkpoints is not None and resume_from is not None and not 0 < resume_from.epoch < config.epochs:
        logger.warning(
            "%s: checkpoint of epoch %d ignored (%d epochs configured); training starts over.",
            checkpoints.uri,
            resume_from.epoch,
            config.epochs,
        )
        resume_from = None
    if checkpoints is not None and resume_from is not None:
        last = checkpoints.restore(resume_from, save_dir)
        logger.info(
            "Resuming the interrupted training from its checkpoint of epoch %d/%d (%s)",
            resume_from.epoch,
            config.epochs,
            checkpoints.uri,
        )
        model = YOLO(str(last), task="pose")
        # The checkpoint carries every other argument; only these may differ on the machine that resumes.
        train_args: dict[str, Any] = {
            "resume": str(last),
            "data": str(data_yaml),
            "save_dir": str(save_dir),
            "device": args["device"],
        }
    else:
        model = YOLO(config.model_source(pretrained), task="pose")
        train_args = {"data": str(data_yaml), "project": str(out_dir), "name": "train", "exist_ok": True, **args}
    if config.freeze_batchnorm:
        model.add_callback("on_train_batch_start", _batchnorm_eval)
    if checkpoints is not None:
        model.add_callback("on_model_save", checkpoints.on_model_save)
    started = time.perf_counter()
    model.train(**train_args)
    seconds = time.perf_counter() - started
    weights_dir = save_dir / "weights"
    last = weights_dir / "last.pt"
    best = weights_dir / "best.pt"
    if not last.is_file():
        raise VtposeError(f"{weights_dir}: training ended without writing weights; see the log above.")
    curves = TrainingCurves.from_results_csv(save_dir / "results.csv", seconds, _jsonable(args))
    if checkpoints is not None:
        checkpoints.clear()
    return TrainResult(
        best_weights=best if best.is_file() else last,
        last_weights=last,
        curves=curves,
        resumed_from_epoch=resume_from.epoch if resume_from else 0,
    )


def _batchnorm_eval(trainer: Any) -> None:
    # Ultralytics puts the model in train mode every epoch; eval mode on BatchNorm stops the running
    # statistics from updating while its affine weights still train.
    import torch

    for module in trainer.model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool | type(None)) else str(v) for k, v in args.items()}
