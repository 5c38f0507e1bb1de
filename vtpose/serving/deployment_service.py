"""ZenML's local BentoML deployment service, able to serve a BentoML 1.4 Bento (see vtpose/serving/deployment.py).

A module of its own because the service daemon imports the class by its source path, and ZenML is imported here at
module level.
"""

from __future__ import annotations

import os

from pydantic import Field
from zenml.constants import DEFAULT_LOCAL_SERVICE_IP_ADDRESS
from zenml.integrations.bentoml.services import BentoMLLocalDeploymentConfig, BentoMLLocalDeploymentService
from zenml.logger import get_logger

logger = get_logger(__name__)


class PoseDeploymentConfig(BentoMLLocalDeploymentConfig):
    """The integration's config plus the service's environment.

    Attributes:
        environment: the VTPOSE_* variables the service reads (limits, the studio's avatar folder, its live size),
            set in the daemon before the Bento loads: part of what is deployed, so a rerun with other values
            redeploys instead of keeping a service that ignores them.
    """

    environment: dict[str, str] = Field(default_factory=dict)


class PoseDeploymentService(BentoMLLocalDeploymentService):
    """The integration's service (same type, same records, same `zenml model-deployer` commands) whose daemon
    serves the Bento with BentoML 1.2+'s server, as `bentoml serve` does."""

    # A record written before `environment` existed holds the integration's own config: still loadable.
    config: PoseDeploymentConfig | BentoMLLocalDeploymentConfig

    def run(self) -> None:
        """Serve the Bento until stopped: load it, apply its service config, run the HTTP server (blocking)."""
        from _bentoml_impl.server import serve_http
        from bentoml._internal.service.loader import load

        os.environ.update(getattr(self.config, "environment", None) or {})
        self.endpoint.prepare_for_start()
        working_dir = self.config.working_dir or "."
        service = load(bento_identifier=self.config.bento_tag, working_dir=working_dir)
        service.inject_config()  # type: ignore[union-attr]  # a 1.4 Bento's service is the new SDK's
        logger.info("serving %s on port %s", self.config.bento_tag, self.config.port)
        try:
            serve_http(
                self.config.bento_tag,
                working_dir=working_dir,
                host=self.config.host or DEFAULT_LOCAL_SERVICE_IP_ADDRESS,
                port=self.config.port,
                backlog=self.config.backlog,
            )
        except KeyboardInterrupt:
            logger.info("stopping %s", self.config.bento_tag)
