"""The inference pipeline's parameters (configs/inference.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vtpose.backends import DEFAULT_IMGSZ, EVAL_CONF, VARIANTS
from vtpose.backends.base import DEFAULT_CONF

# The bundled media: the streamer photo and dance.avi (a fresh clone has them after `make data`).
DEFAULT_INPUTS = "data/media"
MAX_SHARDS = 64
DEFAULT_EXCLUDE = ("*.md", "*.txt")


class InferenceConfig(BaseModel):
    """What to run on, with which model, and what to draw.

    Attributes:
        inputs: a folder of images and videos (relative paths from the project root), read as it is, or with
            `dvc_remote` from that DVC remote (a DVC-tracked folder, as the training's ingestion reads data).
        dvc_remote: the DVC remote to read `inputs` from; None: the local folder.
        version: the pose-estimator version to run; None: what runs (the production version on its serving
            variant, else the pretrained checkpoint).
        variant: run this variant instead of the one chosen for the version (pytorch, onnx, openvino,
            openvino-int8); None: the chosen one.
        imgsz: inference size, pixels (a multiple of 32).
        conf: the detection threshold of the COCO results JSON (the evaluation's, so pycocotools sees the whole
            precision-recall curve); overlays and avatars draw only persons at `display_conf` or above.
        display_conf: the threshold of what is drawn and of the per-file JSON (the CLI's).
        annotations: a COCO annotations JSON whose `file_name`s give the images' `image_id`s in the results JSON
            (relative to the project root); None: ids 1, 2, ... in file-name order.
        avatar: a prepared avatar name or an avatar YAML path for everyone; None: each person (each track in a
            video) gets a prepared one in turn.
        background: a prepared background name or an image path; None: the default.
        person: "all" or "largest" (images: who is posed as an avatar).
        on_error: "skip": a bad input is listed in the summary with its reason and the batch goes on; "fail": the
            first one stops the run with the same message.
        shards: split the inputs over this many parallel steps (pods on Kubernetes); 1 for one step.
        exclude: file-name patterns (fnmatch) left out of the inputs, as notes beside media (a README, the sample's
            SOURCE.md); any other file that is neither an image nor a video is a bad input.
    """

    model_config = ConfigDict(extra="forbid")

    inputs: str = DEFAULT_INPUTS
    dvc_remote: str | None = None
    version: str | None = None
    variant: Literal[VARIANTS] | None = None  # type: ignore[valid-type]
    imgsz: int = Field(DEFAULT_IMGSZ, ge=32, multiple_of=32)
    conf: float = Field(EVAL_CONF, gt=0.0, lt=1.0)
    display_conf: float = Field(DEFAULT_CONF, gt=0.0, lt=1.0)
    annotations: str | None = None
    avatar: str | None = None
    background: str | None = None
    person: Literal["all", "largest"] = "all"
    on_error: Literal["skip", "fail"] = "skip"
    shards: int = Field(1, ge=1, le=MAX_SHARDS)
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
