"""ZenML steps: thin adapters over the vtpose library, one per file, grouped by stage."""

from steps.data.convert import convert_dataset
from steps.data.ingest import ingest_dataset, ingest_pretrained
from steps.data.merge import merge_sources
from steps.data.validate import validate_dataset
from steps.deployment.deploy import choose_bento, deploy_model
from steps.deployment.export import export_variants
from steps.deployment.package import package_model
from steps.evaluation.evaluate import evaluate_model
from steps.evaluation.production import production_reference, score_production
from steps.evaluation.promote import promote_model
from steps.inference.choose import choose_inference_model
from steps.inference.infer import infer_inputs
from steps.inference.ingest import ingest_inputs
from steps.inference.merge import merge_inference
from steps.training.train import train_model

__all__ = [
    "choose_bento",
    "choose_inference_model",
    "convert_dataset",
    "deploy_model",
    "evaluate_model",
    "export_variants",
    "infer_inputs",
    "ingest_dataset",
    "ingest_inputs",
    "ingest_pretrained",
    "merge_inference",
    "merge_sources",
    "package_model",
    "production_reference",
    "promote_model",
    "score_production",
    "train_model",
    "validate_dataset",
]
