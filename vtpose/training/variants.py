"""Which exported model the Bento serves: every variant scored and timed the same way, then one rule.

The variants of one trained model are its PyTorch `.pt`, its ONNX export and its OpenVINO IR in FP32 and INT8
(NNCF post-training quantization). Each is scored with the same pycocotools evaluation on the val split and timed
on the machine the packaging step runs on; `choose_variant` then picks the fastest whose AP is within
`max_ap_drop` of the trained `.pt` (or the one a user forced), and says why.

`choose_variant` is pure: scores in, choice out, so the rule is tested without exporting anything.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vtpose.artifacts import ExportedModel
from vtpose.backends import VARIANTS
from vtpose.backends.packaged import MODEL_FILES
from vtpose.errors import VtposeError

# The variant every other is compared with: the trained weights themselves.
REFERENCE_VARIANT = "pytorch"
# Variant names, in the order they are exported and shown: "<backend>" or "<backend>-<precision>".
VariantName = Literal[VARIANTS]  # type: ignore[valid-type]
# `package.backend`: "auto" lets the rule choose; a variant name forces it.
BackendChoice = Literal["auto", VariantName]
AUTO = "auto"
DEFAULT_MAX_AP_DROP = 0.01
# Two APs closer than this are equal (pycocotools rounds nothing; float sums of the same numbers may differ).
_AP_EPS = 1e-9


def variant_backend(variant: str) -> tuple[str, str]:
    """The backend and precision of a variant name: "openvino-int8" -> ("openvino", "int8"), "onnx" -> ("onnx",
    "fp32").

    Raises:
        ValueError: not one of `VARIANTS`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; use one of {', '.join(VARIANTS)}")
    backend, _, precision = variant.partition("-")
    return backend, precision or "fp32"


@dataclass(frozen=True)
class VariantScore:
    """One variant's measured accuracy and speed.

    Attributes:
        name: one of `VARIANTS`.
        ap: COCO keypoint AP on the val split (pycocotools), in [0, 1].
        latency_ms: median single-image latency on this machine, milliseconds.
    """

    name: str
    ap: float
    latency_ms: float


@dataclass(frozen=True)
class VariantChoice:
    """What `choose_variant` decided, and why.

    Attributes:
        chosen: the variant the Bento serves.
        reason: one sentence a person reads in the dashboard and the run log.
        forced: a user chose it (`package.backend`), not the rule.
        rule_choice: what the rule alone picks (equal to `chosen` unless forced).
        reference: the variant the others are compared with ("pytorch", the trained `.pt`).
        reference_ap: its AP.
        max_ap_drop: the AP a variant may lose against the reference and still be eligible.
        eligible: the variants within `max_ap_drop` of the reference, fastest first.
    """

    chosen: str
    reason: str
    forced: bool
    rule_choice: str
    reference: str
    reference_ap: float
    max_ap_drop: float
    eligible: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        record = asdict(self)
        record["eligible"] = list(self.eligible)
        return record


def choose_variant(
    scores: Sequence[VariantScore],
    max_ap_drop: float = DEFAULT_MAX_AP_DROP,
    forced: str | None = None,
    reference: str = REFERENCE_VARIANT,
) -> VariantChoice:
    """The fastest variant whose AP is within `max_ap_drop` of the reference's, unless one is forced.

    Eligible: `ap >= reference_ap - max_ap_drop` (the reference itself always is). Among the eligible the lowest
    latency wins; equal latencies go to the higher AP, then to the earlier in `scores`. A forced variant is served
    whatever the rule says; the reason then names what the rule would have chosen.

    Args:
        scores: one per variant, names unique; must include `reference`.
        max_ap_drop: AP (0-1 scale) a variant may lose against the reference; 0 keeps only variants at least as
            accurate.
        forced: a variant name to serve regardless ("auto" or None: let the rule choose).
        reference: the variant others are compared with.

    Returns:
        The choice, with the eligible variants and a one-sentence reason.

    Raises:
        ValueError: no reference score, duplicate names, a forced variant that was not scored, a negative or
            non-finite `max_ap_drop`, or a non-finite AP or latency.
    """
    if not math.isfinite(max_ap_drop) or max_ap_drop < 0:
        raise ValueError(f"max_ap_drop={max_ap_drop} must be a finite number >= 0 (AP on the 0-1 scale)")
    names = [score.name for score in scores]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    for score in scores:
        if not (math.isfinite(score.ap) and math.isfinite(score.latency_ms)) or score.latency_ms < 0:
            raise ValueError(f"variant {score.name!r} has AP {score.ap} and latency {score.latency_ms} ms; both must "
                             "be finite numbers, the latency >= 0")  # fmt: skip
    by_name = {score.name: score for score in scores}
    if reference not in by_name:
        raise ValueError(f"no score for the reference variant {reference!r}; scored: {', '.join(names) or 'none'}")
    forced = None if forced in (None, AUTO) else forced
    if forced is not None and forced not in by_name:
        raise ValueError(
            f"package.backend={forced!r} was not exported and scored in this run (scored: {', '.join(names)}); "
            "enable its export or choose another"
        )
    ref = by_name[reference]
    floor = ref.ap - max_ap_drop - _AP_EPS
    order = {name: i for i, name in enumerate(names)}
    eligible = sorted(
        (s for s in scores if s.ap >= floor or s.name == reference),
        key=lambda s: (s.latency_ms, -s.ap, order[s.name]),
    )
    best = eligible[0]
    faster_but_worse = [s for s in scores if s.latency_ms < best.latency_ms and s not in eligible]
    rule_reason = (
        f"{best.name} is the fastest ({best.latency_ms:.1f} ms) of the variants within {max_ap_drop:.3f} AP of "
        f"{reference} (AP {ref.ap:.4f}); its AP is {best.ap:.4f}"
    )
    if faster_but_worse:
        rule_reason += "; faster but too inaccurate: " + ", ".join(
            f"{s.name} ({s.latency_ms:.1f} ms, AP {s.ap:.4f}, {ref.ap - s.ap:+.4f} below)"
            for s in sorted(faster_but_worse, key=lambda s: s.latency_ms)
        )
    if forced is None:
        chosen, reason = best.name, rule_reason
    else:
        pick = by_name[forced]
        within = pick in eligible
        chosen = forced
        reason = (
            f"{forced} forced by package.backend (AP {pick.ap:.4f}, {pick.latency_ms:.1f} ms, "
            f"{'within' if within else 'NOT within'} {max_ap_drop:.3f} AP of {reference}); "
            f"the rule would serve {best.name}"
        )
    return VariantChoice(
        chosen=chosen,
        reason=reason,
        forced=forced is not None,
        rule_choice=best.name,
        reference=reference,
        reference_ap=ref.ap,
        max_ap_drop=max_ap_drop,
        eligible=tuple(s.name for s in eligible),
    )


@dataclass(frozen=True)
class Latency:
    """Single-image latency of one model on this machine.

    Attributes:
        median_ms: median of `runs` timed calls, milliseconds.
        p90_ms: their 90th percentile, milliseconds.
        runs: timed calls; warmup: untimed calls made first.
    """

    median_ms: float
    p90_ms: float
    runs: int
    warmup: int


def measure_latency(call: Callable[[], Any], runs: int = 15, warmup: int = 3) -> Latency:
    """Time `call()` `runs` times after `warmup` untimed calls (buffers sized, graphs compiled).

    Args:
        call: one single-image prediction (e.g. `lambda: predictor.predict([image])`).
        runs: timed calls (>= 1).
        warmup: untimed calls first (>= 0).

    Raises:
        ValueError: runs < 1 or warmup < 0.
    """
    return measure_latencies([call], runs=runs, warmup=warmup)[0]


def measure_latencies(calls: Sequence[Callable[[], Any]], runs: int = 15, warmup: int = 3) -> list[Latency]:
    """Time several models against each other: `warmup` untimed calls each, then `runs` rounds of one timed call
    each, the order rotated every round.

    Interleaving spreads whatever else the machine is doing over every model alike, so a busy moment does not
    land on one of them; the medians are then comparable even on shared cores.

    Args:
        calls: one single-image prediction per model.
        runs: timed rounds (>= 1).
        warmup: untimed calls per model first (>= 0).

    Returns:
        One `Latency` per call, in order.

    Raises:
        ValueError: runs < 1 or warmup < 0.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} must be >= 1 and warmup={warmup} >= 0")
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for round_ in range(runs):
        for offset in range(len(calls)):
            index = (round_ + offset) % len(calls)
            start = time.perf_counter()
            calls[index]()
            times[index].append((time.perf_counter() - start) * 1000.0)
    return [
        Latency(median_ms=float(statistics.median(t)), p90_ms=float(np.percentile(t, 90)), runs=runs, warmup=warmup)
        for t in times
    ]


def machine_info() -> dict[str, Any]:
    """The machine the latencies were measured on: usable CPU cores, processor, OS."""
    return {
        "cpu_cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(terse=True),
        "hostname": platform.node(),
    }


@dataclass
class VariantResult:
    """One variant as the report shows it.

    Attributes:
        name: one of `VARIANTS`; backend and precision derived from it.
        stats: the 10 COCO keypoint stats on the val split, by name.
        latency: its single-image latency.
        size_bytes: the variant's files on disk, bytes.
        sha256: hex sha256 by file name.
    """

    name: str
    stats: dict[str, float]
    latency: Latency
    size_bytes: int = 0
    sha256: dict[str, str] = field(default_factory=dict)

    def score(self) -> VariantScore:
        """What `choose_variant` needs."""
        return VariantScore(self.name, self.stats["AP"], self.latency.median_ms)


@dataclass
class VariantReport:
    """Every variant's accuracy and speed and the choice made from them: the `variant_report` artifact.

    Attributes:
        variants: one per exported variant, in `VARIANTS` order.
        choice: the decision (`choose_variant`).
        split: the val split scored; num_images: its size.
        imgsz: the packaged inference size the variants were scored and timed at.
        latency_image: the val image the latencies were measured on (file name) and its size.
        machine: `machine_info()` of where the step ran.
    """

    variants: list[VariantResult]
    choice: VariantChoice
    split: str = ""
    num_images: int = 0
    imgsz: int = 640
    latency_image: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what the materializer stores)."""
        return asdict(self) | {"choice": self.choice.to_dict()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> VariantReport:
        """The inverse of `to_dict`."""
        variants = [VariantResult(**{**v, "latency": Latency(**v["latency"])}) for v in record["variants"]]
        choice = VariantChoice(**{**record["choice"], "eligible": tuple(record["choice"]["eligible"])})
        return cls(**{**record, "variants": variants, "choice": choice})

    def variant(self, name: str) -> VariantResult:
        """The result of one variant.

        Raises:
            KeyError: not in this report.
        """
        for result in self.variants:
            if result.name == name:
                return result
        raise KeyError(f"variant {name!r} is not in this report ({', '.join(v.name for v in self.variants)})")

    def summary(self) -> dict[str, Any]:
        """Flat facts for the model version's metadata: the choice, each variant's AP, latency and size."""
        return {
            "chosen": self.choice.chosen,
            "forced": self.choice.forced,
            "rule_choice": self.choice.rule_choice,
            "reason": self.choice.reason,
            "max_ap_drop": self.choice.max_ap_drop,
            "imgsz": self.imgsz,
            "cpu_cores": self.machine.get("cpu_cores"),
            "variants": {
                v.name: {
                    "AP": round(v.stats["AP"], 4),
                    "latency_ms": round(v.latency.median_ms, 2),
                    "size_bytes": v.size_bytes,
                }
                for v in self.variants
            },
        }

    def text_lines(self) -> list[str]:
        """The report as aligned text for `make run`'s summary: one line per variant, then the decision."""
        lines = [
            f"serving variants at imgsz {self.imgsz}, AP on {self.split}, median latency on "
            f"{self.machine.get('cpu_cores')} CPU cores:"
        ]
        for v in self.variants:
            mark = "  <- served" if v.name == self.choice.chosen else ""
            lines.append(
                f"  {v.name:<14} AP {v.stats['AP']:.4f} ({v.stats['AP'] - self.choice.reference_ap:+.4f})  "
                f"{v.latency.median_ms:7.1f} ms  {v.size_bytes / 1e6:6.1f} MB{mark}"
            )
        lines.append(f"serving: {self.choice.reason}")
        return lines

    def markdown(self) -> str:
        """The report as Markdown: the decision, then one row per variant."""
        machine = self.machine
        lines = [
            f"# Serving variant: `{self.choice.chosen}`{' (forced)' if self.choice.forced else ''}",
            "",
            self.choice.reason + ".",
            "",
            f"Scored with pycocotools on `{self.split}` ({self.num_images} images) at imgsz {self.imgsz}; latency is "
            f"the median single-image call on `{self.latency_image}` after warm-up, on {machine.get('cpu_cores')} "
            f"CPU cores ({machine.get('processor', '')}, {machine.get('hostname', '')}).",
            "",
            "| variant | AP | AP - pytorch | AP50 | AR | latency ms (median) | p90 ms | size MB | eligible |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            mark = "**chosen**" if v.name == self.choice.chosen else ("yes" if v.name in self.choice.eligible else "no")
            lines.append(
                f"| {v.name} | {v.stats['AP']:.4f} | {v.stats['AP'] - self.choice.reference_ap:+.4f} | "
                f"{v.stats['AP50']:.4f} | {v.stats['AR']:.4f} | {v.latency.median_ms:.1f} | {v.latency.p90_ms:.1f} | "
                f"{v.size_bytes / 1e6:.2f} | {mark} |"
            )
        lines += ["", "## Files", "", "| variant | file | sha256 |", "|---|---|---|"]
        for v in self.variants:
            lines += [f"| {v.name} | {name} | `{digest}` |" for name, digest in sorted(v.sha256.items())]
        return "\n".join(lines) + "\n"

    def plot(self) -> bytes:
        """PNG: AP against latency per variant, the AP floor of the rule drawn, the chosen one marked."""
        import matplotlib

        matplotlib.use("Agg")
        from io import BytesIO

        import matplotlib.pyplot as plt

        fig, axis = plt.subplots(figsize=(7, 4.2), dpi=100)
        floor = self.choice.reference_ap - self.choice.max_ap_drop
        axis.axhline(floor, color="grey", linestyle="--", linewidth=1, label=f"AP floor ({floor:.3f})")
        for v in self.variants:
            chosen = v.name == self.choice.chosen
            axis.scatter(
                v.latency.median_ms, v.stats["AP"], s=120 if chosen else 60, marker="*" if chosen else "o",
                color="tab:red" if chosen else "tab:blue", zorder=3,
            )  # fmt: skip
            axis.annotate(v.name, (v.latency.median_ms, v.stats["AP"]), textcoords="offset points", xytext=(6, 6))
        axis.set(
            xlabel=f"median latency, ms ({self.machine.get('cpu_cores')} CPU cores, imgsz {self.imgsz})",
            ylabel=f"AP on {self.split}",
            title=f"Serving variant: {self.choice.chosen}",
        )
        axis.legend(fontsize=8, loc="lower right")
        axis.grid(alpha=0.3)
        fig.tight_layout()
        buffer = BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()


# --- Exporting, scoring and timing the variants of one trained model ------------------------------------------


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


def export_model_variants(
    weights: str | Path,
    variants: Sequence[str],
    imgsz: int,
    out_dir: str | Path,
    calibration_images: Sequence[str | Path] = (),
    calibration_size: int = 100,
    preset: str = "mixed",
    ignored_names: Sequence[str] = (),
    ignored_patterns: Sequence[str] | None = None,
    ignored_types: Sequence[str] = (),
) -> dict[str, ExportedModel]:
    """Export trained `.pt` weights to every variant asked for (besides "pytorch", the weights themselves).

    ONNX comes from Ultralytics' exporter, the OpenVINO FP32 IR from the ONNX graph, the INT8 IR from the FP32 IR
    by NNCF post-training quantization on `calibration_images` (`vtpose.backends.export`). An intermediate a
    later variant needs (ONNX for OpenVINO, FP32 for INT8) is made even when not asked for, and not returned.

    Args:
        weights: the trained `.pt`.
        variants: names from `VARIANTS`; "pytorch" is the weights themselves (returned without copying).
        imgsz: the inference size exported for, pixels.
        out_dir: where each variant is written, at `out_dir / MODEL_FILES[name]` (the layout of a packaged model).
        calibration_images: the training split's images, for INT8 (the first `calibration_size` are used).
        calibration_size: most calibration images.
        preset: NNCF preset, "mixed" or "performance".
        ignored_names: operation names NNCF keeps in float (matched exactly).
        ignored_patterns: regular expressions of operation names kept in float; None for the backends' default
            (the head's box decoding and the sigmoids).
        ignored_types: operation types kept in float.

    Returns:
        Variant name -> the exported model (for "pytorch", the `.pt` itself), in `VARIANTS` order.

    Raises:
        VtposeError: the weights are missing, an export fails, or INT8 is asked for without calibration images.
        ValueError: an unknown variant name.
    """
    import re

    from vtpose.artifacts import sha256_file
    from vtpose.backends import export

    weights, out_dir = Path(weights), Path(out_dir)
    for name in variants:
        variant_backend(name)
    if not weights.is_file():
        raise VtposeError(f"{weights}: trained weights not found; export needs the .pt file.")
    wanted = set(variants)
    source_sha = sha256_file(weights)
    out: dict[str, ExportedModel] = {}
    if "pytorch" in wanted:
        out["pytorch"] = ExportedModel(weights, "pytorch", imgsz, source_sha)
    onnx_path = fp32 = None
    if wanted & {"onnx", "openvino", "openvino-int8"}:
        onnx_dir = out_dir / Path(MODEL_FILES["onnx"]).parent
        exported = export.export_onnx(weights, imgsz, onnx_dir)
        onnx_path = exported.replace(onnx_dir / Path(MODEL_FILES["onnx"]).name)
        out["onnx"] = ExportedModel(onnx_path, "onnx", imgsz, source_sha)
    if wanted & {"openvino", "openvino-int8"}:
        assert onnx_path is not None
        xml = out_dir / MODEL_FILES["openvino"]
        fp32 = export.export_openvino(onnx_path, xml, imgsz)
        out["openvino"] = ExportedModel(xml.parent, "openvino", imgsz, source_sha)
    if "openvino-int8" in wanted:
        assert fp32 is not None
        if not calibration_images:
            raise VtposeError("the openvino-int8 variant needs calibration images (the training split's); none given.")
        patterns = list(export.DEFAULT_INT8_IGNORED_PATTERNS if ignored_patterns is None else ignored_patterns)
        patterns += [re.escape(name) for name in ignored_names]
        xml = out_dir / MODEL_FILES["openvino-int8"]
        int8 = export.quantize_openvino_int8(
            fp32,
            calibration_images,
            xml,
            imgsz=imgsz,
            calibration_size=calibration_size,
            preset=preset,
            ignored_patterns=patterns,
            ignored_types=ignored_types,
        )
        settings = {**int8.calibration, "ignored_names": list(ignored_names)}
        out["openvino-int8"] = ExportedModel(xml.parent, "openvino-int8", imgsz, source_sha, settings)
    return {name: out[name] for name in VARIANTS if name in wanted}


def model_file(model: ExportedModel) -> Path:
    """The file a backend opens for an exported variant (the `.xml` inside an IR folder)."""
    if model.path.is_dir():
        return model.path / Path(MODEL_FILES[model.variant]).name
    return model.path


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
        models: the variants (`export_model_variants`), one of them "pytorch" (the reference).
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
    backends, scores = [], []
    for model in models:
        backend = open_backend(model_file(model), imgsz=imgsz, conf=EVAL_CONF)
        detections, num_images = predict_coco_results(backend, coco_gt, images_dir)
        scores.append(score_keypoints(coco_gt, detections)[0])
        # Timed as the service runs a lone request: its confidence threshold (fewer candidates through NMS).
        backend.conf = DEFAULT_CONF
        backends.append(backend)
    latencies = measure_latencies(
        [lambda b=b: b.predict([latency_image]) for b in backends], runs=latency_runs, warmup=latency_warmup
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
