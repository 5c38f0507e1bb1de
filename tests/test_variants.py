"""Which variant the Bento serves: the rule on constructed scores, and the report built from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vtpose.config import PackageConfig, check_run_config
from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.variants import (
    VARIANTS,
    Latency,
    VariantReport,
    VariantResult,
    VariantScore,
    choose_variant,
    measure_latency,
    variant_backend,
)

# The figures of issue 9 (2 CPU cores, imgsz 640): OpenVINO INT8 fastest, 0.009 AP below the trained .pt.
ISSUE_9 = [
    VariantScore("pytorch", 0.492, 80.5),
    VariantScore("onnx", 0.492, 75.2),
    VariantScore("openvino", 0.500, 38.6),
    VariantScore("openvino-int8", 0.483, 27.1),
]


def test_fast_and_close_enough_wins() -> None:
    choice = choose_variant(ISSUE_9, max_ap_drop=0.01)
    assert choice.chosen == "openvino-int8" and not choice.forced
    assert choice.eligible == ("openvino-int8", "openvino", "onnx", "pytorch")
    assert choice.reference_ap == 0.492
    assert "openvino-int8 is the fastest (27.1 ms)" in choice.reason


def test_fast_but_worse_loses_to_slower_accurate() -> None:
    # INT8 is the fastest but 0.009 AP below: with a 0.005 budget the next fastest within it is served.
    choice = choose_variant(ISSUE_9, max_ap_drop=0.005)
    assert choice.chosen == "openvino"
    assert "openvino-int8" not in choice.eligible
    assert "faster but too inaccurate: openvino-int8 (27.1 ms, AP 0.4830, +0.0090 below)" in choice.reason


def test_slow_but_accurate_only_when_everything_faster_is_worse() -> None:
    scores = [
        VariantScore("pytorch", 0.50, 80.0),
        VariantScore("onnx", 0.47, 70.0),
        VariantScore("openvino", 0.45, 40.0),
        VariantScore("openvino-int8", 0.40, 30.0),
    ]
    choice = choose_variant(scores, max_ap_drop=0.01)
    assert choice.chosen == "pytorch" and choice.eligible == ("pytorch",)


def test_drop_of_exactly_the_budget_is_eligible_and_zero_budget_keeps_only_no_worse() -> None:
    scores = [VariantScore("pytorch", 0.50, 80.0), VariantScore("openvino-int8", 0.49, 30.0)]
    assert choose_variant(scores, max_ap_drop=0.01).chosen == "openvino-int8"
    assert choose_variant(scores, max_ap_drop=0.0).chosen == "pytorch"
    better = [VariantScore("pytorch", 0.50, 80.0), VariantScore("openvino", 0.51, 40.0)]
    assert choose_variant(better, max_ap_drop=0.0).chosen == "openvino"


def test_equal_latency_goes_to_the_more_accurate_then_the_earlier() -> None:
    scores = [
        VariantScore("pytorch", 0.50, 80.0),
        VariantScore("openvino", 0.50, 30.0),
        VariantScore("openvino-int8", 0.495, 30.0),
    ]
    assert choose_variant(scores).chosen == "openvino"
    tied = [VariantScore("pytorch", 0.50, 30.0), VariantScore("onnx", 0.50, 30.0)]
    assert choose_variant(tied).chosen == "pytorch"


def test_forced_backend_is_served_and_the_rule_choice_recorded() -> None:
    choice = choose_variant(ISSUE_9, max_ap_drop=0.01, forced="pytorch")
    assert choice.chosen == "pytorch" and choice.forced and choice.rule_choice == "openvino-int8"
    assert "forced by package.backend" in choice.reason and "the rule would serve openvino-int8" in choice.reason
    # Forcing a variant outside the budget is allowed, and said.
    strict = choose_variant(ISSUE_9, max_ap_drop=0.005, forced="openvino-int8")
    assert strict.chosen == "openvino-int8" and "NOT within" in strict.reason
    assert choose_variant(ISSUE_9, forced="auto") == choose_variant(ISSUE_9)


@pytest.mark.parametrize(
    ("scores", "kwargs", "words"),
    [
        (ISSUE_9[1:], {}, "no score for the reference variant 'pytorch'"),
        (ISSUE_9[:2], {"forced": "openvino-int8"}, "package.backend='openvino-int8' was not exported"),
        (ISSUE_9, {"max_ap_drop": -0.01}, "max_ap_drop=-0.01"),
        ([*ISSUE_9, ISSUE_9[0]], {}, "unique"),
        ([VariantScore("pytorch", float("nan"), 1.0)], {}, "finite"),
    ],
)
def test_bad_input_is_a_clear_error(scores: list[VariantScore], kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(".", r"\.")):
        choose_variant(scores, **kwargs)


def test_variant_names_map_to_backend_and_precision() -> None:
    assert variant_backend("openvino-int8") == ("openvino", "int8")
    assert variant_backend("onnx") == ("onnx", "fp32")
    with pytest.raises(ValueError, match="unknown model variant 'tensorrt'"):
        variant_backend("tensorrt")


def test_measure_latency_calls_warmup_plus_runs_times() -> None:
    calls: list[int] = []
    latency = measure_latency(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7 and latency.runs == 5 and latency.warmup == 2
    assert 0 <= latency.median_ms <= latency.p90_ms
    with pytest.raises(ValueError, match="runs=0"):
        measure_latency(lambda: None, runs=0)


def test_report_round_trips_and_shows_the_decision() -> None:
    choice = choose_variant(ISSUE_9, max_ap_drop=0.005)
    results = [
        VariantResult(
            name=s.name,
            stats={name: s.ap for name in COCO_STAT_NAMES},
            latency=Latency(median_ms=s.latency_ms, p90_ms=s.latency_ms + 1, runs=5, warmup=2),
            size_bytes=1_000_000,
            sha256={f"{s.name}.bin": "ab" * 32},
        )
        for s in ISSUE_9
    ]
    report = VariantReport(results, choice, split="val2017", num_images=108, imgsz=640, machine={"cpu_cores": 2})
    assert VariantReport.from_dict(report.to_dict()) == report
    assert [r.score() for r in report.variants] == ISSUE_9
    text = report.markdown()
    assert text.startswith("# Serving variant: `openvino`")
    assert "| openvino-int8 | 0.4830 | -0.0090 |" in text and "| **chosen** |" in text
    summary = report.summary()
    assert summary["chosen"] == "openvino" and summary["variants"]["openvino-int8"]["latency_ms"] == 27.1
    assert report.plot().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("{backend: openvino-int8, variants: [pytorch, onnx]}", "package: backend 'openvino-int8' is not among"),
        ("{variants: [onnx, openvino]}", "must include 'pytorch'"),
        ("{backend: tensorrt}", "parameters.package.backend: Input should be 'auto'"),
        ("{max_ap_drop: -0.1}", "parameters.package.max_ap_drop"),
        ("{int8: {preset: fast}}", "parameters.package.int8.preset: Input should be 'mixed' or 'performance'"),
        ("{int8: {calibration_size: 0}}", "parameters.package.int8.calibration_size"),
        ("{int8: {ignored_scope: {name: [x]}}}", "parameters.package.int8.ignored_scope.name"),
    ],
)
def test_bad_package_block_is_one_line_naming_the_key(tmp_path: Path, package: str, expected: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"parameters:\n  package: {package}\n")
    with pytest.raises(VtposeError, match=re.escape(expected)):
        check_run_config(config)


def test_package_block_defaults_export_every_variant_and_let_the_rule_choose() -> None:
    package = PackageConfig()
    assert package.variants == list(VARIANTS) and package.backend == "auto" and package.max_ap_drop == 0.01
    assert PackageConfig(backend="onnx", variants=["pytorch", "onnx"]).backend == "onnx"
