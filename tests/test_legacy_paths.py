"""Artifacts stored before the re-layout name their types by old import paths; ZenML must still load them."""

from __future__ import annotations

import importlib
import json

import pytest
from zenml.utils import source_utils

from vtpose.keypoints import COCO_STAT_NAMES
from vtpose.training.reports import EvaluationReport, TrainingCurves
from vtpose.training.variants.report import VariantReport

# Data type sources as stores recorded them: before the re-layout (vtpose.reports, vtpose.variants), and after it,
# before vtpose/training/variants.py became a package.
RECORDED = [
    ("vtpose.reports.EvaluationReport", EvaluationReport),
    ("vtpose.reports.TrainingCurves", TrainingCurves),
    ("vtpose.variants.VariantReport", VariantReport),
    ("vtpose.training.reports.EvaluationReport", EvaluationReport),
    ("vtpose.training.variants.VariantReport", VariantReport),
]


@pytest.mark.parametrize(("source", "cls"), RECORDED)
def test_zenml_loads_each_recorded_type_as_the_class_of_today(source: str, cls: type) -> None:
    assert source_utils.load(source) is cls


def test_old_paths_leave_the_new_modules_their_own_names() -> None:
    """An old path is its own small module; the new module's name and spec stay the new ones."""
    old = importlib.import_module("vtpose.reports")
    new = importlib.import_module("vtpose.training.reports")
    assert old is not new and old.__all__ == ["EvaluationReport", "TrainingCurves"]
    assert new.__spec__ is not None and new.__spec__.name == new.__name__ == "vtpose.training.reports"
    assert EvaluationReport.__module__ == "vtpose.training.reports"
    # Only the types a store may name travel; anything else was never recorded as a data type.
    assert not hasattr(old, "plot_intervals")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vtpose.datasets_typo")


def test_an_artifact_the_store_records_under_an_old_path_loads() -> None:
    """A real artifact in the isolated store, its recorded data type set back to the pre-re-layout path."""
    import sqlalchemy
    from zenml import load_artifact, save_artifact
    from zenml.client import Client

    from materializers import EvaluationReportMaterializer

    report = EvaluationReport(stats=dict.fromkeys(COCO_STAT_NAMES, 0.5), split="val2017", num_images=3)
    saved = save_artifact(report, name="legacy-path-report", materializer=EvaluationReportMaterializer)
    engine = sqlalchemy.create_engine(Client().zen_store.config.url)
    with engine.begin() as connection:
        select = sqlalchemy.text("SELECT data_type FROM artifact_version WHERE id = :id")
        recorded = json.loads(connection.execute(select, {"id": saved.id.hex}).scalar_one())
        assert recorded["module"] == "vtpose.training.reports"
        old = json.dumps({**recorded, "module": "vtpose.reports"})
        update = sqlalchemy.text("UPDATE artifact_version SET data_type = :old WHERE id = :id")
        connection.execute(update, {"old": old, "id": saved.id.hex})
    engine.dispose()
    assert Client().get_artifact_version(saved.id).data_type.import_path == "vtpose.reports.EvaluationReport"
    loaded = load_artifact(saved.id)
    assert type(loaded) is EvaluationReport and loaded.stats == report.stats and loaded.num_images == 3
