"""The quality gate, as a pure decision and through the real ZenML Model Control Plane, both outcomes."""

from __future__ import annotations

from typing import Annotated

import pytest
from zenml import Model, pipeline, step
from zenml.client import Client
from zenml.enums import ModelStages

from steps.evaluation.promote import promote_model
from vtpose.config import PromotionConfig
from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.promotion import decide_promotion
from vtpose.registry import STATS_METADATA_KEY
from vtpose.reports import EvaluationReport

# Its own model, so this test's versions never mix with the pipeline test's `pose-estimator`.
GATE_MODEL = "pose-estimator-gate-test"


def test_decision_against_production() -> None:
    assert decide_promotion("AP", 0.50, production=0.50, pretrained=0.9).promote  # "at least": ties promote
    rejected = decide_promotion("AP", 0.49, production=0.50, pretrained=0.1)
    assert not rejected.promote and rejected.reference == "production" and rejected.reference_value == 0.50
    assert "0.4900" in rejected.reason and "0.5000" in rejected.reason


def test_first_version_is_judged_against_the_pretrained_checkpoint() -> None:
    assert decide_promotion("AP", 0.49, production=None, pretrained=0.49).promote
    first = decide_promotion("AP", 0.30, production=None, pretrained=0.49)
    assert not first.promote and first.reference == "pretrained"
    assert decide_promotion("AP", 0.10, production=None, pretrained=None).promote


@step
def fake_evaluation(ap: float, baseline_ap: float) -> Annotated[EvaluationReport, "evaluation_report"]:
    """An evaluation report with chosen numbers, standing in for a trained model's."""
    return EvaluationReport(
        stats={name: ap for name in COCO_STAT_NAMES}, baseline_stats={name: baseline_ap for name in COCO_STAT_NAMES}
    )


@step
def record_stats(evaluation_report: EvaluationReport) -> None:
    """Log the stats on the model version the way the evaluate step does."""
    from zenml import log_metadata

    log_metadata({STATS_METADATA_KEY: evaluation_report.stats}, infer_model=True)


@pipeline(model=Model(name=GATE_MODEL), enable_cache=False)
def gate_pipeline(ap: float, baseline_ap: float, fail_on_reject: bool) -> None:
    """evaluation -> metadata -> the real promote step."""
    report = fake_evaluation(ap=ap, baseline_ap=baseline_ap)
    record_stats(report)
    promote_model(evaluation_report=report, promotion=PromotionConfig(fail_on_reject=fail_on_reject))


def _decision(run) -> dict:  # type: ignore[no-untyped-def]
    return run.steps["promote_model"].outputs["promotion_decision"][0].load()


def test_gate_promotes_then_rejects_then_fails_the_run(zenml_stack: str) -> None:
    client = Client()
    first = gate_pipeline(ap=0.50, baseline_ap=0.45, fail_on_reject=False)
    assert _decision(first)["promote"] is True
    production = client.get_model_version(GATE_MODEL, ModelStages.PRODUCTION)
    assert production.run_metadata[STATS_METADATA_KEY]["AP"] == pytest.approx(0.50)

    worse = gate_pipeline(ap=0.40, baseline_ap=0.45, fail_on_reject=False)
    decision = _decision(worse)
    assert decision["promote"] is False and decision["reference"] == "production"
    assert decision["reference_value"] == pytest.approx(0.50) and decision["candidate"] == pytest.approx(0.40)
    assert client.get_model_version(GATE_MODEL, ModelStages.PRODUCTION).id == production.id

    with pytest.raises(RuntimeError):
        gate_pipeline(ap=0.30, baseline_ap=0.45, fail_on_reject=True)
    failed = client.get_pipeline("gate_pipeline").last_run
    assert failed.status.value == "failed"
    assert client.get_model_version(GATE_MODEL, ModelStages.PRODUCTION).id == production.id

    better = gate_pipeline(ap=0.55, baseline_ap=0.45, fail_on_reject=True)
    assert _decision(better)["promote"] is True
    assert client.get_model_version(GATE_MODEL, ModelStages.PRODUCTION).id != production.id
