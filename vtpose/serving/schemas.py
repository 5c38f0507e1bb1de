"""The pose service's response bodies: DESIGN.md's inference JSON as pydantic models (BentoML's OpenAPI page and
its response validation read them)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.pose import PersonPose


class ImageSize(BaseModel):
    """The input image's size in pixels."""

    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class PersonRecord(BaseModel):
    """DESIGN.md's person record."""

    bbox: list[float] = Field(
        description="[x, y, w, h] in pixels, top-left corner and size", min_length=4, max_length=4
    )
    score: float = Field(description="person confidence in [0, 1]")
    keypoints: list[list[float]] = Field(
        description=f"{NUM_KEYPOINTS} [x, y, confidence] triples in COCO order, pixels",
        min_length=NUM_KEYPOINTS,
        max_length=NUM_KEYPOINTS,
    )

    @classmethod
    def from_pose(cls, person: PersonPose) -> PersonRecord:
        """The record of one `PersonPose` (rounded as `PersonPose.to_json` rounds)."""
        return cls.model_validate(person.to_json())


class PoseResult(BaseModel):
    """DESIGN.md's inference JSON plus the model version that produced it."""

    image: ImageSize
    persons: list[PersonRecord]
    model_version: str = Field(description="the packaged model version (the ZenML model version it came from)")


class BatchResult(BaseModel):
    """One `PoseResult` per image, in request order."""

    results: list[PoseResult]
    model_version: str


def pose_result(image_shape: tuple[int, ...], persons: Sequence[PersonPose], model_version: str) -> PoseResult:
    """The response for one image of `image_shape` (height, width, ...)."""
    height, width = image_shape[:2]
    return PoseResult(
        image=ImageSize(width=width, height=height),
        persons=[PersonRecord.from_pose(p) for p in persons],
        model_version=model_version,
    )
