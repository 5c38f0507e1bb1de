"""What a person looks at after training and evaluation: training curves, evaluation reports with their intervals,
prediction previews (a dataset's own views are in `vtpose.data.reports`).

Pure functions over library objects; the materializers only save what these return.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.overlay import PREVIEW_IMAGES, draw_keypoints, fit_within
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, BootstrapResult

GT_COLOR = (80, 220, 80)
PRED_COLOR = (40, 80, 255)


@dataclass
class TrainingCurves:
    """Ultralytics' per-epoch results table.

    Attributes:
        rows: one dict per epoch, as results.csv has them (epoch, train/*_loss, lr/pg*, metrics/*...).
        train_seconds: wall-clock training time.
        args: the training arguments Ultralytics ran with.
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_results_csv(cls, path: Path, train_seconds: float, args: dict[str, Any]) -> TrainingCurves:
        """Read Ultralytics' results.csv (columns padded with spaces in older releases)."""
        rows = []
        if path.is_file():
            with open(path, newline="") as f:
                for raw in csv.DictReader(f):
                    rows.append({k.strip(): float(v) for k, v in raw.items() if k and v not in (None, "")})
        return cls(rows=rows, train_seconds=train_seconds, args=args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def plot_training_curves(curves: TrainingCurves) -> bytes:
    """PNG of losses, learning rate and (where Ultralytics validated) validation metrics per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from io import BytesIO

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), dpi=100)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(curves.rows)]
    keys = sorted({k for row in curves.rows for k in row})
    panels = [
        (axes[0], "training losses", [k for k in keys if k.startswith("train/")]),
        (axes[1], "learning rate", [k for k in keys if k.startswith("lr/")]),
    ]
    for axis, title, columns in panels:
        for key in columns:
            axis.plot(epochs, [row.get(key, np.nan) for row in curves.rows], marker="o", label=key.split("/", 1)[1])
        axis.set(title=title, xlabel="epoch")
        if columns:
            axis.legend(fontsize=8)
    # With `val: false` Ultralytics writes zeros for the epochs it did not validate; leave those out.
    metric_keys = [k for k in keys if k.startswith("metrics/")]
    validated = [(e, row) for e, row in zip(epochs, curves.rows, strict=True) if any(row.get(k) for k in metric_keys)]
    for key in metric_keys:
        axes[2].plot([e for e, _ in validated], [row[key] for _, row in validated], marker="o", label=key[8:])
    axes[2].set(title="Ultralytics validation metrics", xlabel="epoch")
    if validated:
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class EvaluationReport:
    """The trained model's pycocotools stats beside the production version's and the pretrained checkpoint's, all
    scored on the same split in the same run, with paired bootstrap intervals.

    The production scoring step writes one of these for the production version alone (its `stats`, no baseline),
    and an empty one (no stats) when nothing is in production.

    Attributes:
        stats: the scored model's 10 COCO keypoint stats by name (the trained model, the candidate).
        baseline_stats: the pretrained checkpoint's stats (empty if no baseline was evaluated).
        production_stats: the production version's stats on this split (empty if nothing is in production).
        per_keypoint: rows from `vtpose.training.evaluate.per_keypoint_errors`.
        split: the evaluated split name; num_images: its size.
        imgsz: the evaluation image size.
        bootstrap: `vtpose.training.bootstrap.BootstrapResult.to_dict()`: intervals for every model's stats and for the
            paired differences (candidate - production, candidate - pretrained); empty if not bootstrapped.
        weights_sha256: sha256 of the scored weights; model_version: its model version name, where it has one.
        production_version / production_weights_sha256: which production version was scored beside it.
        results_json: the scored COCO results records.
        previews: PNG bytes of a few val images with predicted (red) and ground-truth (green) skeletons.
        per_source: on a merged val split (`data.sources`), each source's own scores, from the same detections:
            source name -> {"num_images", "stats", "production_stats", "baseline_stats", "bootstrap", "pckh"}
            (`vtpose.training.per_source.per_source_evaluation`); empty for a single-source run.
    """

    stats: dict[str, float]
    baseline_stats: dict[str, float] = field(default_factory=dict)
    production_stats: dict[str, float] = field(default_factory=dict)
    per_keypoint: list[dict[str, Any]] = field(default_factory=list)
    split: str = ""
    num_images: int = 0
    imgsz: int = 640
    bootstrap: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    model_version: str = ""
    production_version: str = ""
    production_weights_sha256: str = ""
    results_json: list[dict[str, Any]] = field(default_factory=list)
    previews: list[bytes] = field(default_factory=list)
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Everything but the bulky detections and images."""
        return {
            "stats": self.stats,
            "baseline_stats": self.baseline_stats,
            "production_stats": self.production_stats,
            "per_keypoint": self.per_keypoint,
            "split": self.split,
            "num_images": self.num_images,
            "imgsz": self.imgsz,
            "bootstrap": self.bootstrap,
            "weights_sha256": self.weights_sha256,
            "model_version": self.model_version,
            "production_version": self.production_version,
            "production_weights_sha256": self.production_weights_sha256,
            "per_source": self.per_source,
        }

    def bootstrap_result(self) -> BootstrapResult | None:
        """The bootstrap intervals, or None if the evaluation was not bootstrapped."""
        return BootstrapResult.from_dict(self.bootstrap) if self.bootstrap else None

    def columns(self) -> list[tuple[str, str, dict[str, float]]]:
        """(role, heading, stats) of each scored model, the trained model first."""
        columns = [(CANDIDATE, "trained", self.stats)]
        if self.production_stats:
            columns.append((PRODUCTION, f"production (version {self.production_version})", self.production_stats))
        if self.baseline_stats:
            columns.append((PRETRAINED, "pretrained", self.baseline_stats))
        return columns

    def source_report(self, name: str) -> EvaluationReport:
        """One source's part of a merged evaluation as a report of its own (no detections, previews or
        per-keypoint rows): what the same models scored on that source's val images alone."""
        part = self.per_source[name]
        return EvaluationReport(
            stats=part["stats"],
            baseline_stats=part["baseline_stats"],
            production_stats=part["production_stats"],
            split=f"{self.split} of source {name}",
            num_images=part["num_images"],
            imgsz=self.imgsz,
            bootstrap=part["bootstrap"],
            weights_sha256=self.weights_sha256,
            model_version=self.model_version,
            production_version=self.production_version,
            production_weights_sha256=self.production_weights_sha256,
        )

    def per_source_summary(self) -> dict[str, dict[str, Any]]:
        """Each source's stats by model and its PCKh where scored, small enough for metadata."""
        return {
            name: {
                "num_images": part["num_images"],
                **{heading.split()[0]: stats for role, heading, stats in self.source_report(name).columns()},
                "PCKh": {role: score["PCKh"] for role, score in (part.get("pckh") or {}).items()},
            }
            for name, part in self.per_source.items()
        }

    def pckh_lines(self, name: str) -> list[str]:
        """A source's PCKh@0.5 (MPII ground truth only), one line per scored model; [] where it has none."""
        scores = self.per_source[name].get("pckh") or {}
        headings = {role: heading for role, heading, _ in self.columns()}
        lines = []
        for role, score in scores.items():
            value = "n/a" if score["PCKh"] is None else f"{score['PCKh']:.4f}"
            lines.append(
                f"PCKh@{score['threshold']:g} {headings.get(role, role)}: {value} over {score['persons']} persons "
                f"({score['unmatched_persons']} without a detection, {score['persons_without_head_box']} without a "
                f"head box left out; mean over the {len(score['mean_joints'])} joints a COCO-17 model predicts)"
            )
        return lines

    def markdown(self) -> str:
        """The report as Markdown: stats side by side with their intervals, the paired differences, each source's
        own (a merged val split), then the per-keypoint table."""
        title = f"# Evaluation on `{self.split}` ({self.num_images} images, imgsz {self.imgsz})"
        if not self.stats:
            return f"{title}\n\nNothing in production: no model version was scored.\n"
        lines = [title, ""]
        if self.model_version:
            lines += [f"Model version {self.model_version}, weights sha256 `{self.weights_sha256[:12]}`.", ""]
        lines += ['pycocotools `COCOeval(gt, dt, "keypoints")`, every model on the same split in the same run.']
        lines += self._stats_markdown("##")
        for name in self.per_source:
            part = self.source_report(name)
            lines += ["", f"## Source `{name}` alone ({part.num_images} val images)"]
            lines += part._stats_markdown("###")
            lines += [f"\n{line}" for line in self.pckh_lines(name)]
        lines += ["", "## Per keypoint (detections matched at OKS 0.5)", ""]
        lines += ["| keypoint | matched | mean error px | median error px | OKS |", "|---|---|---|---|---|"]
        for row in self.per_keypoint:
            cells = [row["keypoint"], row["matched"], row["mean_error_px"], row["median_error_px"], row["oks"]]
            lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"

    def _stats_markdown(self, heading: str) -> list[str]:
        """The stats table with intervals, then the paired differences under a `heading`-level title."""
        lines: list[str] = []
        bootstrap = self.bootstrap_result()
        if bootstrap:
            lines += [
                f"In brackets: {bootstrap.confidence:.0%} intervals by a {bootstrap.method}, "
                f"{bootstrap.resamples} resamples of the {bootstrap.num_images} images, seed {bootstrap.seed}."
            ]
        columns = self.columns()
        lines += ["", "| stat | " + " | ".join(h for _, h, _ in columns) + " |", "|---|" + "---|" * len(columns)]
        for name in COCO_STAT_NAMES:
            cells = []
            for role, _, stats in columns:
                interval = bootstrap.intervals.get(role, {}).get(name) if bootstrap else None
                cells.append(interval.format() if interval else f"{stats[name]:.4f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        differences = [
            (role, h) for role, h, _ in columns[1:] if bootstrap and bootstrap.difference(CANDIDATE, role, "AP")
        ]
        if bootstrap and differences:
            title = "Paired differences (trained minus each reference, same images in every resample)"
            lines += ["", f"{heading} {title}", ""]
            lines += ["| stat | " + " | ".join(f"trained - {h}" for _, h in differences) + " |"]
            lines += ["|---|" + "---|" * len(differences)]
            for name in COCO_STAT_NAMES:
                found = [bootstrap.difference(CANDIDATE, role, name) for role, _ in differences]
                lines.append(f"| {name} | " + " | ".join(c.format(signed=True) if c else "" for c in found) + " |")
        return lines


def plot_intervals(report: EvaluationReport, stat: str = "AP") -> bytes | None:
    """PNG of one stat's intervals: each model's value, and each paired difference against 0 (None if the
    report was not bootstrapped)."""
    bootstrap = report.bootstrap_result()
    if bootstrap is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from io import BytesIO

    import matplotlib.pyplot as plt

    models = [
        (h, bootstrap.intervals[r][stat]) for r, h, _ in report.columns() if stat in bootstrap.intervals.get(r, {})
    ]
    differences = [
        (f"trained - {h}", d)
        for r, h, _ in report.columns()[1:]
        if (d := bootstrap.difference(CANDIDATE, r, stat)) is not None
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * max(len(models), len(differences), 2) + 1.4), dpi=100)
    for axis, rows, title in [
        (axes[0], models, f"{stat} with its {bootstrap.confidence:.0%} interval"),
        (axes[1], differences, f"paired difference in {stat}"),
    ]:
        for y, (_, interval) in enumerate(rows):
            low, high = interval.estimate - interval.low, interval.high - interval.estimate
            axis.errorbar(interval.estimate, y, xerr=[[low], [high]], fmt="o", capsize=4)
        signed = axis is axes[1]
        axis.set_yticks(range(len(rows)), [f"{label}\n{i.format(signed=signed)}" for label, i in rows], fontsize=8)
        axis.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # the trained model on top
        axis.set_title(title, fontsize=10)
    axes[1].axvline(0, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(f"{bootstrap.resamples} paired bootstrap resamples of {bootstrap.num_images} images", fontsize=9)
    fig.tight_layout()
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def prediction_previews(
    detections: list[dict[str, Any]],
    coco: dict[str, Any],
    images_dir: Path,
    count: int = PREVIEW_IMAGES,
    min_score: float = 0.25,
) -> list[bytes]:
    """PNGs of the val images with the most ground-truth persons: ground truth green, predictions red."""
    gts: dict[int, list[dict[str, Any]]] = {}
    for annotation in coco["annotations"]:
        if not annotation.get("iscrowd") and annotation.get("num_keypoints", 0) > 0:
            gts.setdefault(annotation["image_id"], []).append(annotation)
    images = {image["id"]: image for image in coco["images"]}
    chosen = sorted(gts, key=lambda i: (-len(gts[i]), i))[:count]
    previews = []
    for image_id in chosen:
        bgr = cv2.imread(str(images_dir / images[image_id]["file_name"]))
        if bgr is None:
            continue
        for annotation in gts[image_id]:
            draw_keypoints(bgr, np.asarray(annotation["keypoints"], np.float32).reshape(-1, 3), 1, GT_COLOR)
        for detection in detections:
            if detection["image_id"] == image_id and detection["score"] >= min_score:
                draw_keypoints(bgr, np.asarray(detection["keypoints"], np.float32).reshape(-1, 3), 0.3, PRED_COLOR)
        ok, png = cv2.imencode(".png", fit_within(bgr)[0])
        if ok:
            previews.append(png.tobytes())
    return previews
