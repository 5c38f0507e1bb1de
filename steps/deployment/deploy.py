"""Deployment: what runs (or a pinned version) served by ZenML's BentoML local deployment service, checked before
it replaces the running one (vtpose/serving/deployment.py says how and why)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from vtpose.serving.deployment import DeploymentConfig, Target, choose_target, deploy

logger = get_logger(__name__)


# Never cached: the answer depends on the store's production stage and the local Bento store, not on the inputs.
@step(enable_cache=False)
def choose_bento(deployment: DeploymentConfig) -> Annotated[dict[str, Any], "deployment_target"]:
    """The model version to serve (production, else the pretrained checkpoint; or the config's `version`) and its
    Bento, imported from the artifact store or packaged when the training run's is not in the local store."""
    target = choose_target(deployment)
    logger.info("Deploying %s from Bento %s", target.description, target.bento_tag)
    return target.to_dict()


# Never cached: a rerun must look at the running service itself (its daemon may have died since).
@step(enable_cache=False)
def deploy_model(
    deployment_target: dict[str, Any], deployment: DeploymentConfig
) -> Annotated[dict[str, Any], "deployment"]:
    """Serve the target on `deployment.port`: checked on a free port first, then swapped in; a failed check fails
    the run with the reason and leaves the old service serving."""
    target = Target.from_dict(deployment_target)
    result = deploy(target, deployment, pipeline_name=get_step_context().pipeline.name)
    record = result.to_dict()
    logger.info("%s", result.summary)
    if target.source in ("production", "pinned"):
        log_metadata(metadata={"deployment": record}, model_name=target.model_name, model_version=target.version)
    return record
