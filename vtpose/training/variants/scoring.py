"""Scoring the exported variants of one trained model (`vtpose.backends.export.export_model_variants`) the same
way, timing them, choosing the one to serve, and what the Bento then carries."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from vtpose.artifacts import ExportedModel
from vtpose.backends import PoseBackend
from vtpose.backends.export import model_file
from vtpose.errors import VtposeError
from vtpose.training.variants.choice import DEFAULT_MAX_AP_DROP, REFERENCE_VARIANT, choose_variant
from vtpose.training.variants.report import VariantReport, VariantResult
from vtpose.training.variants.timing import machine_info, measure_latencies


def split_images(annotations: str | Path, images_dir: str | Path, count: int | None = None) -> list[Path]:
    """The images of a COCO split in image-id order (the first `count`; all if None), as paths.

    Raises:
        VtposeError: the annotations file is missing or lists no image.
    """
    from vtpose.training.evaluate import load_ground_truth

    coco = load_ground_truth(annotations)
    ids = sorted(coco.getImgIds())[: count if count is not None else None]
    if not ids:
        raise VtposeError(f"{annotations}: lists no images; a split needs at least one.")
    return [Path(images_dir) / coco.imgs[i]["file_name"] for i in ids]


def score_model_variants(
    models: Sequence[ExportedModel],
    annotations: str | Path,
    images_dir: str | Path,
    split: str,
    imgsz: int,
    max_ap_drop: float = DEFAULT_MAX_AP_DROP,
    forced: str | None = None,
    latency_runs: int = 15,
    latency_warmup: int = 3,
) -> VariantReport:
    """Score every variant with the same pycocotools evaluation, time it, and choose the one to serve.

    Each variant is opened on its backend (`vtpose.backends.open_backend`) at `imgsz`; its AP comes from COCO
    results on the whole split at the evaluation threshold (`vtpose.training.evaluate`), its latency from single-image
    calls on the split's first image at the service's threshold, every core of this machine available, the
    variants timed in interleaved rounds (`measure_latencies`).

    Args:
        models: the variants (`vtpose.backends.export.export_model_variants`), one of them "pytorch" (the reference).
        annotations: the val split's person_keypoints JSON; images_dir: its images; split: its name.
        imgsz: the packaged inference size, pixels.
        max_ap_drop, forced: see `choose_variant`.
        latency_runs, latency_warmup: see `measure_latencies`.

    Returns:
        The report: each variant's stats, latency, size and sha256, and the choice.

    Raises:
        VtposeError: a variant cannot be opened, or the split is unreadable.
        ValueError: see `choose_variant`.
    """
    from vtpose.backends import DEFAULT_CONF, EVAL_CONF, open_backend
    from vtpose.pose import load_image
    from vtpose.training.evaluate import load_ground_truth, predict_coco_results, score_keypoints

    coco_gt = load_ground_truth(annotations)
    latency_path = split_images(annotations, images_dir, 1)[0]
    latency_image = load_image(latency_path)
    results = []
    num_images = 0
    backends: list[PoseBackend] = []
    scores: list[dict[str, float]] = []
    for model in models:
        backend = open_backend(model_file(model), imgsz=imgsz, conf=EVAL_CONF)
        detections, num_images = predict_coco_results(backend, coco_gt, images_dir)
        scores.append(score_keypoints(coco_gt, detections)[0])
        # Timed as the service runs a lone request: its confidence threshold (fewer candidates through NMS).
        backend.conf = DEFAULT_CONF
        backends.append(backend)
    latencies = measure_latencies(
        [partial(b.predict, [latency_image]) for b in backends], runs=latency_runs, warmup=latency_warmup
    )
    for model, stats, latency in zip(models, scores, latencies, strict=True):
        results.append(VariantResult(model.variant, stats, latency, model.size_bytes, model.sha256()))
    del backends
    choice = choose_variant([r.score() for r in results], max_ap_drop=max_ap_drop, forced=forced)
    height, width = latency_image.shape[:2]
    return VariantReport(
        variants=results,
        choice=choice,
        split=split,
        num_images=num_images,
        imgsz=imgsz,
        latency_image=f"{latency_path.name} ({width}x{height})",
        machine=machine_info(),
    )


def bento_variants(report: VariantReport | None, exported: Sequence[ExportedModel]) -> tuple[str, dict[str, Path]]:
    """What the Bento carries besides the `.pt`, and the variant it serves: the report's choice.

    The ONNX file always travels (the service's fallback, and what `build_bento` exports when it is missing); the
    chosen variant's files too. Without a report (variants not exported) the service runs ONNX, as before.

    Args:
        report: the `variant_report` of `export_variants`, or None.
        exported: the exported variants the report scored.

    Returns:
        (the variant served, {variant name: its file or IR folder} for `vtpose.serving.packaging.build_bento`).

    Raises:
        VtposeError: the chosen variant is not among `exported`.
    """
    by_name = {model.variant: model.path for model in exported}
    if report is None:
        return "onnx", {name: path for name, path in by_name.items() if name == "onnx"}
    chosen = report.choice.chosen
    if chosen != REFERENCE_VARIANT and chosen not in by_name:
        raise VtposeError(
            f"the variant report chose {chosen!r} but its export is not among {sorted(by_name)}; run the pipeline "
            "again (export_variants and package_model must come from the same run)."
        )
    return chosen, {name: by_name[name] for name in ("onnx", chosen) if name in by_name}
