"""The deployment pipeline: choose the Bento of what runs -> deploy it, checked, in place of the running service.

`zenml pipeline run deployment_pipeline [-c configs/deployment.yaml]`; `make serve` and `make studio` run it
before attaching to the service, so they serve what the gate promoted.
"""

from __future__ import annotations

from zenml import pipeline

from steps import choose_bento, deploy_model
from vtpose.serving.deployment import DeploymentConfig


@pipeline(enable_cache=False)
def deployment_pipeline(deployment: DeploymentConfig | None = None) -> None:
    """Deploy the production version of pose-estimator (else the pretrained checkpoint), or the configured one."""
    deployment = deployment or DeploymentConfig()
    deploy_model(deployment_target=choose_bento(deployment=deployment), deployment=deployment)
