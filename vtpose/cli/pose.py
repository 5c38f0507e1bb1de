"""`vtpose infer` (the poses in one image) and `vtpose evaluate` (pycocotools OKS on a COCO split)."""

from __future__ import annotations

import json
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


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@weights_option
@imgsz_option
@backend_option
@click.option("--conf", type=float, default=0.25, show_default=True, help="Minimum person confidence.")
@click.option("--json", "as_json", is_flag=True, help="Print DESIGN.md's inference JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Save the skeleton overlay.")
@friendly_errors
def infer(
    image: Path,
    weights: Path | None,
    imgsz: int,
    backend: str | None,
    conf: float,
    as_json: bool,
    output: Path | None,
) -> None:
    """Find the poses in one IMAGE."""
    from vtpose.backends import open_backend
    from vtpose.pose import load_image

    bgr = load_image(image)
    model = resolve_model(weights, backend)
    predictor = open_backend(runtime_weights(model.weights, model.backend, imgsz), imgsz=imgsz, conf=conf)
    persons = predictor.predict_one(bgr)
    height, width = bgr.shape[:2]
    if output is not None:
        from vtpose.overlay import draw_skeletons, write_image

        write_image(output, draw_skeletons(bgr, persons))
    if as_json:
        record = {
            "image": {"width": width, "height": height},
            "persons": [p.to_json() for p in persons],
            "model_version": model.model_version,
        }
        click.echo(json.dumps(record))
        return
    click.echo(f"{image}: {width}x{height}, {len(persons)} person(s)")
    for i, person in enumerate(persons):
        x, y, w, h = person.bbox
        click.echo(f"  person {i}: score {person.score:.2f}, box x={x:.0f} y={y:.0f} w={w:.0f} h={h:.0f}")
    if output is not None:
        click.echo(f"overlay: {output}")


@click.command()
@click.argument("weights", type=click.Path(path_type=Path))
@click.option("--annotations", type=click.Path(path_type=Path), required=True, help="person_keypoints JSON.")
@click.option("--images", type=click.Path(path_type=Path), required=True, help="Folder of the JSON's images.")
@imgsz_option
@click.option("--json", "as_json", is_flag=True, help="Print the 10 stats as JSON.")
@friendly_errors
def evaluate(weights: Path, annotations: Path, images: Path, imgsz: int, as_json: bool) -> None:
    """Score WEIGHTS with pycocotools OKS (COCOeval "keypoints") on a COCO split."""
    from vtpose.training.evaluate import evaluate_weights

    result = evaluate_weights(weights, annotations, images, imgsz=imgsz)
    if as_json:
        click.echo(json.dumps(result.stats))
        return
    click.echo(f"{weights} on {annotations.name} ({result.num_images} images, imgsz {imgsz}):")
    for name, value in result.stats.items():
        click.echo(f"  {name:<5} {value:.4f}")
