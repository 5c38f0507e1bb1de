"""The vtuber studio's avatars: definitions (YAML under assets/avatars), the 2D rig, drawing and scenes."""

from __future__ import annotations

from vtpose.studio.avatar.draw import draw_avatar
from vtpose.studio.avatar.rig import Rig, complete_pose, settle_head
from vtpose.studio.avatar.scene import (
    DEFAULT_BACKGROUND,
    FrameRenderer,
    background_files,
    fit_to_scene,
    load_background,
    render_scene,
    select_persons,
)
from vtpose.studio.avatar.spec import DEFAULT_AVATAR, AvatarSpec, PartSpec, list_avatars, load_avatar, load_avatar_file

__all__ = [
    "DEFAULT_AVATAR",
    "DEFAULT_BACKGROUND",
    "AvatarSpec",
    "FrameRenderer",
    "PartSpec",
    "Rig",
    "background_files",
    "complete_pose",
    "draw_avatar",
    "fit_to_scene",
    "list_avatars",
    "load_avatar",
    "load_avatar_file",
    "load_background",
    "render_scene",
    "select_persons",
    "settle_head",
]
