"""The offline avatar commands: `vtpose avatar` (a photo), `vtpose avatars` (the list), `vtpose animate` (a video or a
webcam) and `vtpose match` (two poses compared).

The live page is not here: it is the pose service's /studio (vtpose/studio/live/).
"""

from __future__ import annotations

from pathlib import Path

import click

from vtpose.cli.options import (
    backend_option,
    friendly_errors,
    imgsz_option,
    resolve_model,
    runtime_weights,
    weights_option,
)

background_option = click.option(
    "--background", default=None, help="Prepared background name or any image file. Default: studio."
)


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The picture to write (.png or .jpg).",
)
@click.option(
    "--avatar",
    "avatar_name",
    default=None,
    help="Avatar name (see `vtpose avatars`) or YAML file. Default: each person a prepared one.",
)
@background_option
@click.option("--on-original", is_flag=True, help="Draw the avatar over the person in the photo, at their size.")
@click.option(
    "--person",
    type=click.Choice(["all", "largest"]),
    default="all",
    show_default=True,
    help="Pose every person found, or only the largest.",
)
@backend_option
@weights_option
@imgsz_option
@friendly_errors
def avatar(
    image: Path,
    output: Path,
    avatar_name: str | None,
    background: str | None,
    on_original: bool,
    person: str,
    backend: str | None,
    weights: Path | None,
    imgsz: int,
) -> None:
    """Pose a prepared avatar like the person in IMAGE, on a background or over the photo."""
    from vtpose.backends import open_backend
    from vtpose.errors import VtposeError
    from vtpose.overlay import write_image
    from vtpose.pose import load_image
    from vtpose.studio.avatar import render_scene, select_persons

    bgr = load_image(image)
    model = resolve_model(weights, backend)
    persons = open_backend(runtime_weights(model.weights, model.backend, imgsz), imgsz=imgsz).predict_one(bgr)
    if not persons:
        raise VtposeError(f"{image}: nobody found in the photo; use a photo with a person in view.")
    chosen = select_persons(persons, person)
    scene = render_scene(bgr, chosen, avatar_name, background, on_original, source_name=str(image))
    write_image(output, scene)
    click.echo(str(output))


@click.command()
@friendly_errors
def avatars() -> None:
    """List the prepared avatars and backgrounds."""
    from vtpose.studio.avatar import DEFAULT_AVATAR, DEFAULT_BACKGROUND, background_files, list_avatars

    click.echo("avatars:")
    for spec in list_avatars():
        mark = " (default)" if spec.name == DEFAULT_AVATAR else ""
        click.echo(f"  {spec.name}{mark}: {spec.description}")
    click.echo("backgrounds:")
    for name in background_files():
        click.echo(f"  {name}{' (default)' if name == DEFAULT_BACKGROUND else ''}")


@click.command()
@click.argument("video", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The video to write (.mp4 or .avi), same frame count and rate as the source.",
)
@click.option("--source", default=None, help="Camera index instead of VIDEO (0: the first webcam); Ctrl+C stops.")
@click.option(
    "--avatar",
    "avatar_name",
    default=None,
    help="One avatar for everyone. Default: each person gets a prepared avatar and keeps it.",
)
@background_option
@click.option("--side-by-side", is_flag=True, help="Put the source video beside the avatars.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
@backend_option
@weights_option
@imgsz_option
@friendly_errors
def animate(
    video: Path | None,
    output: Path,
    source: str | None,
    avatar_name: str | None,
    background: str | None,
    side_by_side: bool,
    max_frames: int | None,
    backend: str | None,
    weights: Path | None,
    imgsz: int,
) -> None:
    """Animate avatars from the people in VIDEO (or a webcam), tracked and smoothed; prints `fps: X`."""
    from vtpose.errors import VtposeError
    from vtpose.studio.video import animate_video

    if video is not None and source is None:
        stream: Path | str = video
    elif source is not None and video is None:
        stream = source
    else:
        raise VtposeError("give either a VIDEO file or --source CAMERA (e.g. --source 0), not both or neither.")
    model = resolve_model(weights, backend)
    stats = animate_video(
        stream,
        output,
        model.weights,
        imgsz,
        avatar=avatar_name,
        background=background,
        side_by_side=side_by_side,
        max_frames=max_frames,
        backend=model.backend,
    )
    click.echo(f"{output}: {stats.frames} frames")
    click.echo(f"fps: {stats.fps:.1f}")


@click.command()
@click.argument("image_a", type=click.Path(path_type=Path))
@click.argument("image_b", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a picture of both poses overlaid.",
)
@click.option("--mirror", is_flag=True, help="Also count a mirror image as the same pose.")
@backend_option
@weights_option
@imgsz_option
@friendly_errors
def match(
    image_a: Path,
    image_b: Path,
    output: Path | None,
    mirror: bool,
    backend: str | None,
    weights: Path | None,
    imgsz: int,
) -> None:
    """How alike the poses of the largest person in IMAGE_A and in IMAGE_B are, 0 to 100: prints `score: X`."""
    from vtpose.backends import open_backend
    from vtpose.errors import VtposeError
    from vtpose.overlay import write_image
    from vtpose.pose import load_image
    from vtpose.studio.match import draw_match, pose_similarity

    images = [load_image(image_a), load_image(image_b)]  # both checked before the model loads
    model = resolve_model(weights, backend)
    predictor = open_backend(runtime_weights(model.weights, model.backend, imgsz), imgsz=imgsz)
    poses = []
    for path, bgr in zip((image_a, image_b), images, strict=True):
        persons = predictor.predict_one(bgr)
        if not persons:
            raise VtposeError(f"{path}: nobody found in the photo; use a photo with a person in view.")
        poses.append(max(persons, key=lambda p: p.area).keypoints)
    try:
        result = pose_similarity(poses[0], poses[1], mirror=mirror)
    except VtposeError as error:
        raise VtposeError(f"{image_a} vs {image_b}: {error}") from error
    if output is not None:
        write_image(output, draw_match(result))
        click.echo(f"overlay: {output}")
    click.echo(f"score: {result.score:.1f}")
