"""A training config in, weights and curves out, with Ultralytics YOLO-pose underneath (resumable through
`vtpose.training.checkpoints`)."""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path
from vtpose.training.checkpoints import TrainingCheckpoints
from vtpose.training.reports import TrainingCurves

# Arguments vtpose decides itself: where runs go, and integrations that would phone home or open a second
# MLflow run (ZenML's MLflow tracker owns the run).
RESERVED_ARGS = frozenset({"data", "project", "name", "exist_ok", "model", "mode", "task"})
ARCHITECTURE_SUFFIXES = (".pt", ".yaml", ".yml")
# `train.model` value meaning "fine-tune the pipeline's pretrained checkpoint artifact".
PRETRAINED_MODEL = "pretrained"

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
