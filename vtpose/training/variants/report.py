"""The `variant_report` artifact: every variant's accuracy, speed, size and checksums and the choice made from
them, as text for the run's summary, Markdown and a plot for the dashboard, and flat facts for the model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vtpose.training.variants.choice import VariantChoice, VariantScore
from vtpose.training.variants.timing import Latency


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
