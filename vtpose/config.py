"""The training pipeline's parameters: one pydantic model per stage, validated before any step runs.

`configs/*.yaml` fill these under `parameters:`; unknown keys are errors that name the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vtpose.train import TrainConfig

DataSource = Literal["coco_folder", "mpii", "coco2017"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Where the data and the pretrained checkpoint come from.

    Attributes:
        source: "coco_folder" (images/{split} + annotations/person_keypoints_{split}.json), "mpii" (mmpose
            JSON, mapped to COCO-17), or "coco2017" (the official archives, downloaded and checked).
        path: the folder for coco_folder and mpii; the download cache for coco2017. Relative paths are
            resolved against the project root.
        train_split / val_split: split names (COCO folder and archives).
        base_url: where coco2017 archives are fetched from (a mirror, or a server on 127.0.0.1 in tests).
        checksums: archive file name -> expected md5 or sha256 hex digest (length tells which).
        pretrained: the COCO-pretrained checkpoint: the evaluation baseline and the fine-tuning start.
    """

    source: DataSource = "coco_folder"
    path: str = "data/coco-person-mini"
    train_split: str = "train2017"
    val_split: str = "val2017"
    base_url: str = "http://images.cocodataset.org"
    checksums: dict[str, str] = Field(default_factory=dict)
    pretrained: str = "data/pretrained/yolo11n-pose.pt"


class ValidationConfig(_Strict):
    """What to do with records that fail validation: stop the run ("fail") or drop them and say so ("skip")."""

    on_error: Literal["fail", "skip"] = "fail"


class EvaluationConfig(_Strict):
    """How the val split is scored.

    Attributes:
        imgsz: inference size for evaluation.
        compare_pretrained: also score the pretrained checkpoint on the same split, side by side.
        previews: how many val images with predicted skeletons go into the report.
    """

    imgsz: int = Field(640, ge=32, multiple_of=32)
    compare_pretrained: bool = True
    previews: int = Field(6, ge=0, le=24)


class PromotionConfig(_Strict):
    """The quality gate.

    Attributes:
        metric: the stat compared (COCO AP by default).
        fail_on_reject: end the run with an error when the gate rejects the model.
    """

    metric: Literal["AP", "AP50", "AP75", "APm", "APl", "AR"] = "AP"
    fail_on_reject: bool = False


class PackageConfig(_Strict):
    """Packaging the model as a BentoML service.

    Attributes:
        enabled: build the Bento at the end of the run.
        only_if_promoted: package only a model that reached production.
        imgsz: the image size the ONNX model is exported for and the service predicts at.
    """

    enabled: bool = True
    only_if_promoted: bool = False
    imgsz: int = Field(640, ge=32, multiple_of=32)


__all__ = [
    "DataConfig",
    "EvaluationConfig",
    "PackageConfig",
    "PromotionConfig",
    "TrainConfig",
    "ValidationConfig",
]
