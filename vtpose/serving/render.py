"""/render: the poses found in a request's image drawn as a PNG, by the renderers the CLI uses."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Literal, get_args

import numpy as np

from vtpose.errors import RequestRejected, VtposeError
from vtpose.overlay import draw_skeletons, encode_png
from vtpose.pose import PersonPose

RenderStyle = Literal["skeleton", "avatar", "avatar-on-original"]
RENDER_STYLES: tuple[str, ...] = get_args(RenderStyle)


def render_png(
    bgr: np.ndarray,
    persons: Sequence[PersonPose],
    style: str = "skeleton",
    avatar: str | None = None,
    background: str | None = None,
) -> bytes:
    """The PNG /render answers with, drawn by the same renderers as `vtpose infer -o` and `vtpose avatar`.

    Args:
        bgr: the request's image, BGR (H, W, 3) uint8.
        persons: its poses.
        style: "skeleton" (skeletons over the image), "avatar" (avatars on a prepared background) or
            "avatar-on-original" (avatars over the persons in the image).
        avatar: a prepared avatar's name; None gives each person one in turn.
        background: a prepared background's name (style "avatar"); None for the default.

    Raises:
        RequestRejected: an unknown style, avatar or background (400; only prepared names, never server paths),
            or nobody in the image to pose (422).
    """
    if style not in RENDER_STYLES:
        raise RequestRejected(f"style {style!r} is not one of {', '.join(RENDER_STYLES)}.", field="style")
    if style == "skeleton":
        return encode_png(draw_skeletons(bgr, persons))
    from vtpose.studio.avatar import background_files, list_avatars, render_scene

    avatars = [spec.name for spec in list_avatars()]
    if avatar is not None and avatar not in avatars:
        raise RequestRejected(
            f"avatar {avatar!r} is not a prepared avatar; use one of {', '.join(avatars)}.", field="avatar"
        )
    backgrounds = list(background_files())
    if background is not None and background not in backgrounds:
        raise RequestRejected(
            f"background {background!r} is not a prepared background; use one of {', '.join(backgrounds)}.",
            field="background",
        )
    try:
        scene = render_scene(bgr, persons, avatar, background, on_original=style == "avatar-on-original",
                             source_name="the image")  # fmt: skip
    except VtposeError as error:
        raise RequestRejected(str(error), field="image", status=HTTPStatus.UNPROCESSABLE_ENTITY) from error
    return encode_png(scene)
