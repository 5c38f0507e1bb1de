"""Which variant the Bento serves: the rule on constructed scores, and the report built from them."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import vtpose.training.variants.timing as variants_timing
from vtpose.artifacts import ExportedModel, sha256_file
from vtpose.backends import VARIANTS
from vtpose.backends.export import export_model_variants, model_file
from vtpose.backends.packaged import MODEL_FILES
from vtpose.errors import VtposeError
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.training.config import PackageConfig, check_run_config
from vtpose.training.variants import (
    Latency,
    VariantReport,
    VariantResult,
    VariantScore,
    choose_variant,
    measure_latencies,
    measure_latency,
    score_model_variants,
    split_images,
    variant_backend,
)

# Small enough for the real export and scoring to take seconds on 2 busy cores.
SMALL = 160
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


def test_measure_latency_calls_warmup_plus_runs_times(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock only the calls move: the timed calls take 4, 1, 3, 2 and 10 ms, whatever the machine is doing.
    now = [100.0]
    durations_ms = iter([50.0, 50.0, 4.0, 1.0, 3.0, 2.0, 10.0])  # two untimed warm-up calls first
    monkeypatch.setattr(variants_timing, "time", SimpleNamespace(perf_counter=lambda: now[0]))  # its clock only

    def call() -> None:
        now[0] += next(durations_ms) / 1000.0

    latency = measure_latency(call, runs=5, warmup=2)
    assert latency.runs == 5 and latency.warmup == 2 and next(durations_ms, None) is None  # 7 calls, no more
    assert latency.median_ms == pytest.approx(3.0) and latency.p90_ms == pytest.approx(7.6)  # numpy's linear p90
    with pytest.raises(ValueError, match="runs=0"):
        measure_latency(lambda: None, runs=0)


def test_variants_are_timed_in_interleaved_rounds_after_warming_each() -> None:
    order: list[int] = []
    latencies = measure_latencies([lambda i=i: order.append(i) for i in range(3)], runs=2, warmup=1)
    # Warm-up once each, then round 0 from the first model, round 1 from the second.
    assert order == [0, 1, 2, 0, 1, 2, 1, 2, 0]
    assert [(lat.runs, lat.warmup) for lat in latencies] == [(2, 1)] * 3


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
    lines = report.text_lines()
    assert lines[-1].startswith("serving: openvino is the fastest") and len(lines) == 2 + len(ISSUE_9)
    assert "openvino-int8  AP 0.4830 (-0.0090)" in lines[4] and lines[3].endswith("<- served")


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


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportedModel]:
    """Every variant of the pretrained checkpoint at a small size (INT8 calibrated on 4 training images)."""
    train = COCO_MINI_DIR / "annotations" / "person_keypoints_train2017.json"
    calibration = split_images(train, COCO_MINI_DIR / "images" / "train2017", 4)
    out = tmp_path_factory.mktemp("variants")
    return export_model_variants(
        PRETRAINED_WEIGHTS, VARIANTS, SMALL, out, calibration_images=calibration, calibration_size=4
    )


@pytest.fixture(scope="module")
def report(exported: dict[str, ExportedModel]) -> VariantReport:
    return score_model_variants(
        list(exported.values()),
        COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json",
        COCO_MINI_DIR / "images" / "val2017",
        split="val2017",
        imgsz=SMALL,
        latency_runs=3,
        latency_warmup=1,
    )


@pytest.mark.slow  # exports and scores every variant (module fixtures)
def test_export_writes_every_variant_with_sizes_and_checksums(exported: dict[str, ExportedModel]) -> None:
    assert list(exported) == list(VARIANTS)
    assert exported["pytorch"].path == PRETRAINED_WEIGHTS
    # Every variant where a packaged model keeps it: the one layout, MODEL_FILES.
    out = exported["onnx"].path.parent
    assert {name: model_file(exported[name]) for name in VARIANTS[1:]} == {
        name: out / MODEL_FILES[name] for name in VARIANTS[1:]
    }
    for name in ("openvino", "openvino-int8"):
        assert sorted(exported[name].sha256()) == ["model.bin", "model.xml"], name
    for model in exported.values():
        assert model.source_sha256 == sha256_file(PRETRAINED_WEIGHTS) and model.imgsz == SMALL
        assert model.size_bytes == sum(p.stat().st_size for p in model.files()) > 1_000_000
        assert all(sha256_file(p) in model.sha256().values() for p in model.files())
    # INT8 weights are a quarter of FP32's, and say how they were calibrated.
    assert exported["openvino-int8"].size_bytes < exported["openvino"].size_bytes / 2
    assert exported["openvino-int8"].settings["images"] == 4
    assert exported["openvino-int8"].settings["preset"] == "mixed"


@pytest.mark.slow  # exports and scores every variant (module fixtures)
def test_every_variant_scored_timed_and_the_rule_applied(report: VariantReport) -> None:
    assert [v.name for v in report.variants] == list(VARIANTS) and report.num_images == 108
    ap = {v.name: v.stats["AP"] for v in report.variants}
    assert 0.05 < ap["pytorch"] < 1.0
    # The exports compute the same network: FP32 within rounding of the .pt, INT8 within a few AP points.
    assert abs(ap["onnx"] - ap["pytorch"]) < 0.005 and abs(ap["openvino"] - ap["pytorch"]) < 0.005
    assert abs(ap["openvino-int8"] - ap["pytorch"]) < 0.1
    # Milliseconds, as named: no CPU runs even this 160-pixel pose network in under 0.1 ms (seconds would be).
    assert all(v.latency.runs == 3 and 0.1 < v.latency.median_ms <= v.latency.p90_ms for v in report.variants)
    assert report.choice == choose_variant([v.score() for v in report.variants])
    assert report.machine["cpu_cores"] >= 1 and report.latency_image.startswith("000000000139.jpg")


@pytest.mark.slow  # exports and scores every variant (module fixtures)
def test_exported_model_artifact_round_trips_and_refuses_changed_files(
    exported: dict[str, ExportedModel], tmp_path: Path
) -> None:
    from materializers import ExportedModelMaterializer

    for name in ("onnx", "openvino-int8"):
        uri = tmp_path / name
        uri.mkdir()
        materializer = ExportedModelMaterializer(str(uri))
        materializer.save(exported[name])
        metadata = materializer.extract_metadata(exported[name])
        assert metadata["sha256"] == exported[name].sha256() and metadata["size"] == exported[name].size_bytes
        loaded = materializer.load(ExportedModel)
        assert loaded.sha256() == exported[name].sha256() and loaded.variant == name
        assert loaded.settings == exported[name].settings
    stored = tmp_path / "onnx" / "model.onnx"
    stored.write_bytes(stored.read_bytes()[:-16])
    with pytest.raises(ValueError, match="do not match their recorded sha256"):
        ExportedModelMaterializer(str(tmp_path / "onnx")).load(ExportedModel)


def test_mlflow_gets_each_variants_ap_latency_and_the_choice(tmp_path: Path) -> None:
    import mlflow

    from vtpose.training.mlflow_logging import log_variants

    report = VariantReport(
        [
            VariantResult(s.name, {name: s.ap for name in COCO_STAT_NAMES}, Latency(s.latency_ms, s.latency_ms, 5, 1))
            for s in ISSUE_9
        ],
        choose_variant(ISSUE_9),
        split="val2017",
        machine={"cpu_cores": 2},
    )
    assert log_variants(report) is False  # no active run: nothing logged, on purpose
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # An explicit experiment of this store: earlier tests in the session leave another store's experiment active.
        with mlflow.start_run(experiment_id=mlflow.create_experiment("variants-test")) as run:
            assert log_variants(report) is True
        logged = mlflow.get_run(run.info.run_id).data
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "packaging")}
    finally:
        mlflow.set_tracking_uri(previous)
    assert logged.params["serving_variant"] == "openvino-int8" and logged.params["latency_cpu_cores"] == "2"
    assert logged.metrics["variant_openvino_int8_AP"] == 0.483
    assert logged.metrics["variant_pytorch_latency_ms"] == 80.5
    assert artifacts == {"packaging/variants.md", "packaging/variants.png"}
