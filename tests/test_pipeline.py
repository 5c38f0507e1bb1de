"""The whole training pipeline on configs/smoke.yaml, in an isolated ZenML store with the real MLflow tracker."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import cv2
import mlflow
import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.io import fileio

import pipelines.training
import steps
from vtpose.artifacts import PoseDataset, PoseWeights, YoloPoseDataset
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.paths import COCO_MINI_DIR, CONFIGS_DIR, DEFAULT_CONFIG
from vtpose.serving.what_runs import PRETRAINED_VARIANT, ModelChoice, what_runs
from vtpose.training.bootstrap import CANDIDATE, PRETRAINED, PRODUCTION, Interval
from vtpose.training.config import PromotionConfig
from vtpose.training.promotion import GateRule
from vtpose.training.registry import BOOTSTRAP_METADATA_KEY, MODEL_NAME, STATS_METADATA_KEY, WEIGHTS_ARTIFACT
from vtpose.training.reports import EvaluationReport, TrainingCurves

pytestmark = pytest.mark.slow  # every test here reads the smoke pipeline's run (minutes)

# Every step the training pipeline's module imports from the package runs in the pipeline (the other pipelines'
# steps live in the same package), but merge_sources, which runs only with data.sources
# (tests/test_pipeline_sources.py).
EXPECTED_STEPS = {name for name in steps.__all__ if name in vars(pipelines.training)} - {"merge_sources"}
NSW = "not_significantly_worse"
PACKAGES_AROUND_RUN: dict[str, set[str]] = {}  # "before"/"after" the smoke run: the environment's name==version
CHOICES_AROUND_RUN: dict[str, ModelChoice] = {}  # "before"/"after" the smoke run: what `what_runs()` answered


def _installed_packages() -> set[str]:
    importlib.invalidate_caches()  # see a distribution installed since the last look
    return {f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()}


@pytest.fixture(scope="module")
def smoke_run(zenml_stack: str):  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    CHOICES_AROUND_RUN["before"] = what_runs()  # a fresh store: nothing in production
    PACKAGES_AROUND_RUN["before"] = _installed_packages()
    run = training_pipeline.with_options(config_path=str(CONFIGS_DIR / "smoke.yaml"))()
    PACKAGES_AROUND_RUN["after"] = _installed_packages()
    CHOICES_AROUND_RUN["after"] = what_runs()
    return run


def _smoke_rules() -> list[GateRule]:
    """configs/smoke.yaml's gate rules."""
    return PromotionConfig(
        **yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())["parameters"]["promotion"]
    ).gate_rules()


def test_the_run_installed_nothing(smoke_run) -> None:  # type: ignore[no-untyped-def]
    # BentoML's build pip-installs uv when it is missing (issue 11); a run must leave its environment as it was.
    before, after = PACKAGES_AROUND_RUN["before"], PACKAGES_AROUND_RUN["after"]
    assert after == before, f"installed during the run: {sorted(after - before)}; removed: {sorted(before - after)}"


def _output(run, step: str, name: str):  # type: ignore[no-untyped-def]
    return run.steps[step].outputs[name][0]


def _sample_split(split: str) -> dict[str, Any]:
    """The sample's own annotation JSON for a split, read here, not through the code under test."""
    return json.loads((COCO_MINI_DIR / "annotations" / f"person_keypoints_{split}.json").read_text())


def _visualization(artifact, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The decoded PNG of the artifact's visualization whose file is `name`."""
    (uri,) = [v.uri for v in artifact.visualizations if v.uri.endswith(name)]
    with fileio.open(uri, "rb") as f:
        image = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"{uri} does not decode as an image"
    return image


def test_every_step_ran_and_handed_on_artifacts(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    assert run.status.value == "completed"
    assert set(run.steps) == EXPECTED_STEPS
    dataset = _output(run, "validate_dataset", "dataset").load()
    assert isinstance(dataset, PoseDataset) and dataset.annotation_file(dataset.val_split).is_file()
    yolo = _output(run, "convert_dataset", "yolo_dataset").load()
    assert isinstance(yolo, YoloPoseDataset) and any((yolo.root / "labels").rglob("*.txt"))
    weights = _output(run, "train_model", "trained_weights").load()
    assert isinstance(weights, PoseWeights) and weights.path.stat().st_size > 1_000_000
    curves = _output(run, "train_model", "training_curves").load()
    assert isinstance(curves, TrainingCurves) and len(curves.rows) == 1
    report = _output(run, "evaluate_model", "evaluation_report").load()
    assert isinstance(report, EvaluationReport)
    assert list(report.stats) == list(COCO_STAT_NAMES) and set(report.baseline_stats) == set(COCO_STAT_NAMES)
    assert 0.0 < report.stats["AP"] <= 1.0 and len(report.per_keypoint) == 17 and report.previews
    # Nothing in production in this fresh store: the production scoring step scored nothing.
    assert _output(run, "production_reference", "production_weights_sha256").load() == ""
    assert _output(run, "score_production", "production_report").load().stats == {} and not report.production_stats
    bootstrap = report.bootstrap_result()
    assert bootstrap is not None and bootstrap.resamples == 200 and bootstrap.num_images == report.num_images
    assert bootstrap.intervals[CANDIDATE]["AP"].estimate == report.stats["AP"]


def test_artifacts_have_dashboard_visualizations(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    for step, name in [
        ("validate_dataset", "dataset"),
        ("convert_dataset", "yolo_dataset"),
        ("train_model", "training_curves"),
        ("evaluate_model", "evaluation_report"),
        ("score_production", "production_report"),
    ]:
        artifact = _output(run, step, name)
        assert artifact.visualizations, f"{step}.{name} has no visualization"
    # The images decode, at the size their contents fix: contact sheets of 480-pixel cells, 3 to a row.
    dataset = _output(run, "validate_dataset", "dataset")
    assert _visualization(dataset, "previews.png").shape == (2 * 480, 3 * 480, 3)  # 6 training previews
    report = _output(run, "evaluate_model", "evaluation_report")
    assert _visualization(report, "predictions.png").shape == (480, 3 * 480, 3)  # evaluation.previews: 3
    intervals = _visualization(report, "intervals.png")
    assert intervals.shape[0] > 100 and intervals.shape[1] > 100 and intervals.std() > 0  # a plot, not a blank
    curves = _visualization(_output(run, "train_model", "training_curves"), "curves.png")
    assert curves.shape[0] > 100 and curves.std() > 0


def test_dataset_counts_are_the_samples(smoke_run) -> None:  # type: ignore[no-untyped-def]
    # Counted here from the sample's JSON; validation (on_error: skip) must have dropped nothing from it.
    run = Client().get_pipeline_run(smoke_run.id)
    artifact = _output(run, "validate_dataset", "dataset")
    metadata = artifact.run_metadata
    assert metadata.get("skipped_records", 0) == 0
    for split, images, persons in [("train2017", 130, 143), ("val2017", 108, 95)]:
        coco = _sample_split(split)
        with_keypoints = [a for a in coco["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
        assert (len(coco["images"]), len(with_keypoints)) == (images, persons)  # the sample DESIGN.md describes
        assert metadata[f"{split}_images"] == images and metadata[f"{split}_persons_with_keypoints"] == persons
    loaded = artifact.load()
    assert json.loads(loaded.annotation_file("val2017").read_text())["images"] == _sample_split("val2017")["images"]


def test_evaluation_stats_are_pycocotools_own(smoke_run) -> None:  # type: ignore[no-untyped-def]
    # The COCO results the report scored, scored again here by pycocotools against the sample's val JSON.
    report = _output(Client().get_pipeline_run(smoke_run.id), "evaluate_model", "evaluation_report").load()
    val = _sample_split("val2017")
    assert report.num_images == len(val["images"]) == 108
    assert {d["image_id"] for d in report.results_json} <= {image["id"] for image in val["images"]}
    assert len(report.results_json) > 50  # a model that finds people, not an empty list scored as zero
    ground_truth = COCO()
    ground_truth.dataset = val
    ground_truth.createIndex()
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(report.results_json), "keypoints")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert report.stats == pytest.approx(dict(zip(COCO_STAT_NAMES, evaluator.stats.tolist(), strict=True)), abs=1e-12)


def test_one_mlflow_run_with_params_epoch_metrics_stats_and_weights(smoke_run) -> None:  # type: ignore[no-untyped-def]
    tracker = Client().active_stack.experiment_tracker
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["training_pipeline"], output_format="list")
    matching = [r for r in runs if r.info.run_name == smoke_run.name]
    assert len(matching) == 1
    mlflow_run = matching[0]
    assert mlflow_run.data.params["train.epochs"] == "1" and mlflow_run.data.params["train.imgsz"] == "320"
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(mlflow_run.info.run_id, "train/pose_loss")) == 1
    # The values are the evaluation report's: stats, intervals and paired differences.
    report = _output(Client().get_pipeline_run(smoke_run.id), "evaluate_model", "evaluation_report").load()
    metrics, bootstrap = mlflow_run.data.metrics, report.bootstrap_result()
    for name in COCO_STAT_NAMES:
        assert metrics[f"coco_{name}"] == pytest.approx(report.stats[name], abs=1e-12)
        assert metrics[f"pretrained_coco_{name}"] == pytest.approx(report.baseline_stats[name], abs=1e-12)
    ap, difference = bootstrap.intervals[CANDIDATE]["AP"], bootstrap.difference(CANDIDATE, PRETRAINED, "AP")
    assert (metrics["coco_AP_ci_low"], metrics["coco_AP_ci_high"]) == pytest.approx((ap.low, ap.high), abs=1e-12)
    assert metrics["candidate_minus_pretrained_AP"] == pytest.approx(difference.estimate, abs=1e-12)
    assert metrics["candidate_minus_pretrained_AP_ci_low"] == pytest.approx(difference.low, abs=1e-12)
    assert mlflow_run.data.params["evaluation.bootstrap_resamples"] == "200"
    artifacts = [a.path for a in client.list_artifacts(mlflow_run.info.run_id, "weights")]
    assert artifacts == ["weights/best.pt"]


def test_model_version_has_metrics_decision_and_weights(smoke_run) -> None:  # type: ignore[no-untyped-def]
    run = Client().get_pipeline_run(smoke_run.id)
    version = run.model_version
    assert version is not None and version.model.name == MODEL_NAME
    metadata = version.run_metadata
    report = _output(run, "evaluate_model", "evaluation_report").load()
    assert metadata[STATS_METADATA_KEY] == pytest.approx(report.stats, abs=1e-12)
    assert metadata[f"pretrained_{STATS_METADATA_KEY}"] == pytest.approx(report.baseline_stats, abs=1e-12)
    assert metadata[BOOTSTRAP_METADATA_KEY] == report.bootstrap
    decision = metadata["promotion"]
    assert decision["reference"] == "pretrained" and not decision["production_below_pretrained"]  # a first version
    # configs/smoke.yaml's rules, every one applied to the report's own numbers, the first one's on the top level.
    rules = _smoke_rules()
    assert [(c["metric"], c["rule"], c["margin"]) for c in decision["checks"]] == [
        (r.metric, r.rule, r.margin) for r in rules
    ]
    assert len(rules) > 1 and (decision["metric"], decision["rule"], decision["margin"]) == ("AP", NSW, 0.05)
    bootstrap = report.bootstrap_result()
    for rule, check in zip(rules, decision["checks"], strict=True):
        difference = bootstrap.difference(CANDIDATE, PRETRAINED, rule.metric)
        assert check["difference"] == pytest.approx(difference.to_dict(), abs=1e-12)
        assert check["candidate"] == report.stats[rule.metric]
        assert check["reference_value"] == report.baseline_stats[rule.metric]
        assert check["passed"] == (difference.high >= -rule.margin), check
    assert decision["difference"] == decision["checks"][0]["difference"]
    assert decision["promote"] == all(c["passed"] for c in decision["checks"])
    # One epoch at a tiny learning rate cannot lose 5 points of AP or APl: the first version reaches production,
    # so the runs below are judged against it.
    assert decision["promote"] is True and version.stage == "production"
    assert version.get_artifact(WEIGHTS_ARTIFACT) is not None


def test_what_runs_follows_the_gate(smoke_run) -> None:  # type: ignore[no-untyped-def]
    """Nothing in production: the pretrained checkpoint, INT8. After the promoted smoke run: that version, on the
    variant its export step chose, with the weights it trained and the Bento its package step built."""
    from vtpose.artifacts import sha256_file
    from vtpose.paths import PRETRAINED_WEIGHTS

    before, after = CHOICES_AROUND_RUN["before"], CHOICES_AROUND_RUN["after"]
    assert (before.source, before.version, before.variant) == ("pretrained", "pretrained", PRETRAINED_VARIANT)
    assert before.weights == PRETRAINED_WEIGHTS and before.bento_tag is None
    assert before.description == f"pretrained checkpoint yolo11n-pose.pt (nothing in production), {PRETRAINED_VARIANT}"
    run = Client().get_pipeline_run(smoke_run.id)
    chosen = run.model_version.run_metadata["serving_variant"]["chosen"]
    assert (after.source, after.version, after.variant) == ("production", str(run.model_version.name), chosen)
    assert after.description == f"{MODEL_NAME} version {run.model_version.name} (production), {chosen}"
    assert sha256_file(after.weights) == _output(run, "train_model", "trained_weights").load().sha256
    assert after.bento_tag == _output(run, "package_model", "bento").load()["tag"]


def test_a_second_run_reuses_cached_steps(smoke_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipelines import training_pipeline

    first = Client().get_pipeline_run(smoke_run.id)
    second = training_pipeline.with_options(config_path=str(CONFIGS_DIR / "smoke.yaml"))()
    run = Client().get_pipeline_run(second.id)
    assert run.status.value == "completed"
    # Ingestion always reads the source again; unchanged content keeps training cached. The first run's version
    # is in production now, so its weights are scored on this split and the evaluation runs again to compare.
    for step in ("ingest_dataset", "ingest_pretrained", "production_reference", "score_production"):
        assert run.steps[step].status.value == "completed", step
    for step in ("evaluate_model", "promote_model", "package_model"):
        assert run.steps[step].status.value == "completed", step
    # Same weights, data and package block: the exports, their scores and the choice come from the cache.
    for step in ("validate_dataset", "convert_dataset", "train_model", "export_variants"):
        assert run.steps[step].status.value == "cached", step
    trained = _output(first, "train_model", "trained_weights").load()
    assert _output(run, "production_reference", "production_weights_sha256").load() == trained.sha256
    # The same weights as production, on the same split: equal stats, a paired difference of exactly zero.
    report = _output(run, "evaluate_model", "evaluation_report").load()
    assert report.production_version == str(first.model_version.name) and report.production_stats == report.stats
    for name in COCO_STAT_NAMES:
        assert report.bootstrap_result().difference(CANDIDATE, PRODUCTION, name) == Interval(0.0, 0.0, 0.0)
    decision = _output(run, "promote_model", "promotion_decision").load()
    assert decision["production_version"] == str(first.model_version.name)
    # Production (these same weights) below the pretrained checkpoint on smoke's first rule's stat, AP, on this
    # split: the rules are applied against the pretrained checkpoint, as in the first run, with the same draws of
    # images (the bootstrap's seed), so the same verdict. Not below: against production, all differences 0.
    below = report.production_stats["AP"] < report.baseline_stats["AP"]
    assert decision["production_below_pretrained"] is below
    assert decision["reference"] == ("pretrained" if below else "production")
    assert decision["reference_value"] == (report.baseline_stats if below else report.stats)["AP"]
    assert decision["production_value"] == report.production_stats["AP"]
    assert ("scores below the pretrained checkpoint" in decision["reason"]) is below
    first_decision = _output(first, "promote_model", "promotion_decision").load()
    assert [c["passed"] for c in decision["checks"]] == [c["passed"] for c in first_decision["checks"]]
    assert decision["promote"] is True  # multi-metric rules, a real run promoted

    # The same production weights and data again: the production score and the evaluation come from the cache.
    third = Client().get_pipeline_run(training_pipeline.with_options(config_path=str(CONFIGS_DIR / "smoke.yaml"))().id)
    assert third.status.value == "completed"
    assert third.steps["production_reference"].status.value == "completed"
    for step in ("score_production", "evaluate_model", "train_model"):
        assert third.steps[step].status.value == "cached", step
    production = Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION)
    assert production.id == third.model_version.id  # promoted, as the second run was

    # The default rules (configs/training.yaml) on the same numbers: APl significantly better is refused either
    # way. Against production (these same weights) every paired difference is exactly 0: not significantly
    # better, and not significantly worse. Against the pretrained checkpoint (production below it on APl) the
    # APl difference is negative. Only the gate (never cached) and packaging after it run again; production
    # stays where it was.
    config = yaml.safe_load((CONFIGS_DIR / "smoke.yaml").read_text())
    config["parameters"]["promotion"] = yaml.safe_load(DEFAULT_CONFIG.read_text())["parameters"]["promotion"]
    config["parameters"]["promotion"]["test_only"] = True  # still a test config, in a test store
    strict = tmp_path / "smoke-default-rules.yaml"
    strict.write_text(yaml.safe_dump(config, sort_keys=False))  # sorted keys reorder train.args: a new cache key
    fourth = Client().get_pipeline_run(training_pipeline.with_options(config_path=str(strict))().id)
    assert fourth.status.value == "completed"  # promotion.fail_on_reject is false: rejected, not failed
    for step in ("train_model", "score_production", "evaluate_model", "export_variants"):
        assert fourth.steps[step].status.value == "cached", step
    decision = _output(fourth, "promote_model", "promotion_decision").load()
    report = _output(fourth, "evaluate_model", "evaluation_report").load()
    rules = PromotionConfig().gate_rules()
    assert decision["promote"] is False and (decision["metric"], decision["rule"]) == ("APl", "significantly_better")
    assert [(c["metric"], c["rule"]) for c in decision["checks"]] == [(r.metric, r.rule) for r in rules]
    assert decision["production_version"] == str(third.model_version.name)
    below = report.production_stats["APl"] < report.baseline_stats["APl"]
    assert decision["production_below_pretrained"] is below
    assert decision["checks"][0]["passed"] is False
    if below:
        assert decision["reference"] == "pretrained" and "scores below the pretrained checkpoint" in decision["reason"]
        bootstrap = report.bootstrap_result()
        for rule, check in zip(rules, decision["checks"], strict=True):
            difference = bootstrap.difference(CANDIDATE, PRETRAINED, rule.metric)
            assert check["difference"] == difference.to_dict()
            assert check["passed"] == (difference.high >= 0 if rule.rule == NSW else difference.low > 0), check
    else:
        assert decision["reference"] == "production"
        assert [c["passed"] for c in decision["checks"]] == [False, True, True, True, True]
        assert all(c["difference"] == Interval(0.0, 0.0, 0.0).to_dict() for c in decision["checks"])
        assert decision["reason"].startswith("1 of 5 rules failed: APl ")
        assert "not significantly better" in decision["reason"] and "+0.0000 is not above 0" in decision["reason"]
    assert fourth.model_version.run_metadata["promotion"] == decision
    rejected = Client().get_model_version(MODEL_NAME, str(fourth.model_version.name))
    assert rejected.stage is None
    (still,) = Client().list_model_versions(MODEL_NAME, stage=ModelStages.PRODUCTION).items
    assert still.id == third.model_version.id
    candidate = _output(fourth, "package_model", "bento").load()
    assert candidate["promoted"] is False
    # The rejected version's Bento is a candidate: neither `pose-service:latest` nor what runs (`make serve`).
    import bentoml

    from vtpose.serving.packaging import CANDIDATE_SERVICE_NAME, SERVICE_NAME
    from vtpose.serving.what_runs import serving_bento

    assert candidate["tag"].startswith(f"{CANDIDATE_SERVICE_NAME}:")
    assert bentoml.get(candidate["tag"]).info.labels["source"] == "candidate"
    production_bento = _output(third, "package_model", "bento").load()["tag"]
    assert str(bentoml.get(f"{SERVICE_NAME}:latest").tag) == production_bento != candidate["tag"]
    choice = what_runs()
    assert (choice.source, choice.version) == ("production", str(third.model_version.name))
    assert choice.bento_tag == serving_bento(choice) == production_bento


def test_make_serve_serves_what_runs(smoke_run, deployments, deploy_port: int) -> None:  # type: ignore[no-untyped-def]
    """What `make serve` does (the deployment pipeline, then the deployed service): `GET /model`, `vtpose infer
    --json` and the studio page's header name the same model, the production version the resolver names, and a
    real image gets 17 keypoints per person."""
    import subprocess
    import sys

    import httpx

    from vtpose.paths import MEDIA_DIR
    from vtpose.testing.fake_camera import CHROMIUM

    run = deployments()
    record = _output(run, "deploy_model", "deployment").load()
    choice = what_runs()
    assert choice.source == "production" and record["target"]["model_version"] == choice.model_version
    url = record["url"]
    info = httpx.get(f"{url}/model", timeout=30).json()
    image = MEDIA_DIR / "game-streamer-tips.jpg"
    body = httpx.post(f"{url}/predict", files={"image": (image.name, image.read_bytes(), "image/jpeg")}, timeout=60)
    assert (info["model_version"], info["source"]) == (choice.model_version, "production")
    assert (info["variant"], info["description"]) == (choice.variant, choice.description)
    persons = body.json()["persons"]
    assert persons and all(len(p["keypoints"]) == 17 for p in persons)
    assert body.json()["model_version"] == choice.model_version
    command = [sys.executable, "-m", "vtpose.cli", "infer", str(image), "--json"]
    infer = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    assert json.loads(infer.stdout)["model_version"] == choice.model_version
    assert f"model: {choice.description}" in infer.stderr
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        # wait_for_function evaluates a string, which the page's own CSP forbids (test_studio_browser checks the CSP).
        page = browser.new_context(bypass_csp=True).new_page()
        page.goto(f"{url}/studio/")
        page.wait_for_function("document.getElementById('model').textContent.includes('version')", timeout=60_000)
        header = page.text_content("#model")
        browser.close()
    assert header == f"model: {choice.description}"
    # The record is the model version's too (its deployment, as the dashboard shows it).
    version = Client().get_model_version(MODEL_NAME, choice.version)
    assert version.run_metadata["deployment"]["service_id"] == record["service_id"]
    linked = Client().list_services(model_version_id=version.id).items
    assert [str(service.id) for service in linked] == [record["service_id"]]


def test_model_export_writes_the_registered_weights(smoke_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from vtpose.artifacts import sha256_file
    from vtpose.cli.main import main

    run = Client().get_pipeline_run(smoke_run.id)
    output = tmp_path / "exported.pt"
    result = CliRunner().invoke(main, ["model", "export", "--stage", str(run.model_version.name), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(output)
    trained = _output(run, "train_model", "trained_weights").load()
    assert sha256_file(output) == sha256_file(trained.path)


def test_package_step_built_the_bento(smoke_run) -> None:  # type: ignore[no-untyped-def]
    import bentoml

    run = Client().get_pipeline_run(smoke_run.id)
    record = _output(run, "package_model", "bento").load()
    assert record["built"] is True and record["model_version"] == str(run.model_version.name)
    bento = bentoml.get(record["tag"])
    assert str(bento.tag) == record["tag"] and record["size_bytes"] > 1_000_000
    assert run.model_version.run_metadata["bento"]["tag"] == record["tag"]
    # The exported Bento in the artifact store: what outlives a step container or a pod.
    archive = _output(run, "package_model", "bento_archive").load()
    assert archive.is_file() and archive.stat().st_size > 1_000_000  # `bentoml import` takes it as is


def test_export_step_scored_every_variant_and_the_bento_serves_its_choice(smoke_run) -> None:  # type: ignore[no-untyped-def]
    import bentoml

    from vtpose.training.variants import VARIANTS, VariantReport, choose_variant

    run = Client().get_pipeline_run(smoke_run.id)
    report_artifact = _output(run, "export_variants", "variant_report")
    report = report_artifact.load()
    assert isinstance(report, VariantReport) and [v.name for v in report.variants] == list(VARIANTS)
    assert report.imgsz == 320 and report.split == "val2017" and report.num_images == 108
    assert report.choice == choose_variant([v.score() for v in report.variants], max_ap_drop=0.01)
    assert {v.type.value for v in report_artifact.visualizations} == {"markdown", "image"}
    # The same evaluation as the evaluate step (both at imgsz 320): the trained .pt's AP is the report's.
    evaluation = _output(run, "evaluate_model", "evaluation_report").load()
    assert report.variant("pytorch").stats["AP"] == pytest.approx(evaluation.stats["AP"], abs=1e-9)
    for variant, name in [
        ("onnx", "onnx_model"),
        ("openvino", "openvino_model"),
        ("openvino-int8", "openvino_int8_model"),
    ]:
        artifact = _output(run, "export_variants", name)
        assert artifact.run_metadata["sha256"] == report.variant(variant).sha256 == artifact.load().sha256()
        assert artifact.run_metadata["size"] == report.variant(variant).size_bytes > 1_000_000
        assert artifact.visualizations, name
    assert _output(run, "export_variants", "openvino_int8_model").load().settings["calibration_split"] == "train2017"
    # The decision, APs and latencies on the model version and in the run's MLflow run.
    serving = run.model_version.run_metadata["serving_variant"]
    assert serving["chosen"] == report.choice.chosen and serving["cpu_cores"] == report.machine["cpu_cores"]
    assert serving["variants"]["openvino-int8"]["AP"] == round(report.variant("openvino-int8").stats["AP"], 4)
    tracker = Client().active_stack.experiment_tracker
    mlflow.set_tracking_uri(tracker.get_tracking_uri())
    (mlflow_run,) = [
        r
        for r in mlflow.search_runs(experiment_names=["training_pipeline"], output_format="list")
        if r.info.run_name == smoke_run.name
    ]
    assert mlflow_run.data.params["serving_variant"] == report.choice.chosen
    for variant in report.variants:
        key = variant.name.replace("-", "_")
        assert mlflow_run.data.metrics[f"variant_{key}_AP"] == pytest.approx(variant.stats["AP"], abs=1e-12)
        assert mlflow_run.data.metrics[f"variant_{key}_latency_ms"] == pytest.approx(variant.latency.median_ms)
    # The Bento's model holds the chosen variant's files, checked by sha256, and serves it by default.
    record = _output(run, "package_model", "bento").load()
    assert record["backend"] == report.choice.chosen
    stored = bentoml.models.get(record["model_tag"])
    metadata = stored.info.metadata
    assert metadata["backend_default"] == report.choice.chosen
    assert set(report.variant(report.choice.chosen).sha256.values()) <= set(metadata["sha256"].values())
    # What the service loads: the chosen variant from the model folder, checked, answering on a real image.
    from vtpose.backends.packaged import load_packaged_backend
    from vtpose.paths import MEDIA_DIR
    from vtpose.pose import load_image

    served = load_packaged_backend(stored.path, metadata, report.choice.chosen)
    assert served.variant == report.choice.chosen and served.imgsz == 320
    assert served.predict_one(load_image(MEDIA_DIR / "game-streamer-tips.jpg"))
