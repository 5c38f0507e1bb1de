"""Deploying what runs: a Bento started as ZenML's BentoML local deployment service, checked before it replaces
the one serving.

The service is ZenML's own (`BentoMLLocalDeploymentService`, registered through the active stack's
`BentoMLModelDeployer`), so `zenml model-deployer models list` and the dashboard's model version page show it,
and its daemon runs BentoML 1.4's `serve_http` on the Bento as the integration does. What this module does around
it, and why not the integration's `bentoml_model_deployer_step` as it is (zenml 0.98, bentoml 1.4.39):

- Its service does not serve a BentoML 1.4 Bento: `BentoMLLocalDeploymentService.run` tells old services from new
  ones by `isinstance(svc, bentoml.Service)`, which in 1.4 is the new SDK's class, so it calls the pre-1.2
  `serve_http_production`, which fails on `svc.runners` (AttributeError; the daemon dies before it listens).
  `PoseDeploymentService` is the same service with `run` calling 1.2+'s `serve_http`, as `bentoml serve` does; its
  records are created the way `BaseModelDeployer.deploy_model` creates them (that method always builds the
  integration's class), and stopped, started and deleted through the deployer.
- The step starts a new service before the old one stops: `deploy_model(replace=True)` ignores `replace`, so a new
  Bento on the same port starts a second daemon whose `serve_http` cannot bind the port the old one holds (the
  endpoint allocates another port, the daemon serves on the configured one), and nothing is checked before the
  swap. Here the new Bento is first served on a free port and checked (readyz, `GET /model` names the intended
  version, a real image gets 17 keypoints per person); only then is the old service stopped and the new one
  started on the serving port and checked again; a failure there restarts the old one.
- The step requires the Bento labels `model_uri` (a pydantic `str`, else the config does not validate) and reads
  its APIs by importing the service in the step's process; here the config is written from what was resolved.
- The step caches (`enable_cache=True`), so a second run with the same inputs returns the old service object
  even when its daemon has died; here a rerun looks at the running service itself and restarts it if needed.

Running the same Bento on the same port again changes nothing (same service, same process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field

from vtpose.errors import VtposeError
from vtpose.paths import MEDIA_DIR, PROJECT_ROOT

if TYPE_CHECKING:
    from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer
    from zenml.integrations.bentoml.services import BentoMLLocalDeploymentService

logger = logging.getLogger(__name__)

# Who deploys: the service records carry these, and a later run replaces what an earlier one started.
DEPLOYMENT_PIPELINE = "deployment_pipeline"
DEPLOY_STEP = "deploy_model"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
# The image every new service must answer with 17 keypoints per person before it serves anyone.
CHECK_IMAGE = MEDIA_DIR / "game-streamer-tips.jpg"
# Starting a Bento here (import, model load, OpenVINO compile) takes 10-30 s on 2 busy cores.
DEFAULT_START_TIMEOUT_S = 180
KEYPOINTS = 17
# The service's own settings (vtpose.serving.limits, the studio's) travel with a deployment.
SERVICE_ENV_PREFIX = "VTPOSE_"
# A BentoML server stops its workers on SIGTERM within a few seconds; SIGKILL would orphan them.
STOP_TIMEOUT_S = 30
# The service's APIs, as `zenml model-deployer models describe` lists them (service/service.py's routes).
SERVICE_APIS = ("predict", "predict_batch", "render")
# The flavor and name `make stack` registers the deployer under (scripts/setup_stack.sh).
DEPLOYER_NAME = "bentoml_deployer"
DEPLOYER_FLAVOR = "bentoml"


class DeploymentConfig(BaseModel):
    """The deployment pipeline's parameters (configs/deployment.yaml).

    Attributes:
        version: the `pose-estimator` version to deploy: None for what runs (the production version, else the
            pretrained checkpoint), or a version name or number (a rollback; the service then says "pinned").
        bento: deploy this Bento tag instead of the version's own (stage a candidate by hand); None: the version's.
        host: the address the service listens on.
        port: the serving port (`make serve`, `make studio` and the studio page use it).
        start_timeout_s: how long a new service may take to answer readyz.
    """

    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    bento: str | None = None
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    start_timeout_s: int = Field(DEFAULT_START_TIMEOUT_S, ge=5)


@dataclass(frozen=True)
class Target:
    """What is to be deployed: the model version (as `GET /model` must name it) and its Bento.

    Attributes:
        model_name: "pose-estimator".
        version: the version name ("3"), or "pretrained".
        model_version: what `GET /model` must answer, "<version>+<variant>".
        source: "production", "pretrained", "pinned" (or the Bento's own label for `bento:`).
        bento_tag: the Bento to serve.
        description: the one line naming it.
    """

    model_name: str
    version: str
    model_version: str
    source: str
    bento_tag: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Target:
        """The inverse of `to_dict`."""
        return cls(**{key: str(record[key]) for key in cls.__dataclass_fields__})


class DeploymentRefused(VtposeError):
    """A new service failed its checks; the old one (if any) still serves."""


def choose_target(config: DeploymentConfig) -> Target:
    """Resolve what to deploy and get its Bento into the local store (import it from the model version's
    `bento_archive` artifact, or package it, when the training run's Bento is not here).

    Raises:
        VtposeError: no such version or Bento, or packaging failed.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from vtpose.serving.what_runs import describe, pinned_version, serving_bento, what_runs

    if config.bento:
        try:
            bento = bentoml.bentos.get(config.bento)
        except NotFound as error:
            raise VtposeError(
                f"deployment.bento {config.bento!r}: no such Bento in the local store (`bentoml list`)."
            ) from error
        labels, args = bento.info.labels, _bento_args(bento)
        version, variant = str(labels.get("model_version", "?")), str(args.get("backend", "?"))
        source = str(labels.get("source", "packaged"))
        model_name = str(labels.get("model_name") or "pose-estimator")
        return Target(
            model_name, version, f"{version}+{variant}", source, str(bento.tag),
            describe(source, model_name, version, variant),
        )  # fmt: skip
    choice = pinned_version(config.version) if config.version else what_runs()
    _import_recorded_bento(choice.model_name, choice.version, choice.bento_tag)
    with contextlib.redirect_stdout(_LogWriter()):
        tag = serving_bento(choice)
    return Target(choice.model_name, choice.version, choice.model_version, choice.source, tag, choice.description)


def check_service(url: str, target: Target, image: Path = CHECK_IMAGE, timeout_s: float = 60.0) -> str | None:
    """Ask a running service what a user would: is it ready, which model runs, does a real image get a pose.

    Returns:
        None when every check passes, else the first failure in one sentence.
    """
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout_s) as answer:
            if answer.status != 200:
                return f"{url}/readyz answered {answer.status}"
        with urllib.request.urlopen(f"{url}/model", timeout=timeout_s) as answer:
            model = json.loads(answer.read())
        if model.get("model_version") != target.model_version:
            return f"GET {url}/model names {model.get('model_version')!r}, not the intended {target.model_version!r}"
        body, content_type = _multipart("image", image)
        request = urllib.request.Request(
            f"{url}/predict", data=body, method="POST", headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            result = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{url}: {error}"
    persons = result.get("persons") or []
    if not persons:
        return f"POST {url}/predict found nobody in {image.name}, which shows one person"
    counts = sorted({len(person.get("keypoints") or []) for person in persons})
    if counts != [KEYPOINTS]:
        return f"POST {url}/predict gave persons with {counts} keypoints for {image.name}, not {KEYPOINTS}"
    return None


@dataclass(frozen=True)
class Deployment:
    """What a deployment run left serving.

    Attributes:
        target: what is served.
        url: where ("http://127.0.0.1:3000").
        service_id: the ZenML service's id (`zenml model-deployer models describe ID`).
        pid: the BentoML server's process id.
        changed: False when the same Bento was already serving and answered the checks.
        replaced: the Bento tags of the services this one replaced.
    """

    target: Target
    url: str
    service_id: str
    pid: int | None
    changed: bool
    replaced: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "target": self.target.to_dict()}

    @property
    def summary(self) -> str:
        """One line for the log and the user."""
        verb = "deployed" if self.changed else "already serving (nothing changed)"
        replaced = f", replacing {', '.join(self.replaced)}" if self.replaced else ""
        return f"{self.target.description}: {verb} at {self.url} ({self.target.bento_tag}{replaced})"


def deploy(target: Target, config: DeploymentConfig, pipeline_name: str = DEPLOYMENT_PIPELINE) -> Deployment:
    """Serve `target` on `config.port`: checked on a free port first, then swapped in for the running service.

    Raises:
        DeploymentRefused: the new service failed a check (the old one, if any, still serves).
        VtposeError: the active stack has no BentoML model deployer.
    """
    deployer = active_deployer()
    url = f"http://{config.host}:{config.port}"
    current = [service for service in deployed_services(deployer, pipeline_name) if service.config.port == config.port]
    environment = service_environment()
    same = [s for s in current if s.config.bento_tag == target.bento_tag and _environment(s) == environment]
    for service in same:
        if not service.is_running:
            logger.info("restarting the stopped service of %s", target.bento_tag)
            _restart(service, config.start_timeout_s)
        if check_service(url, target) is None:
            _drop_others(deployer, current, keep=service)
            return Deployment(target, url, str(service.uuid), _pid(service), False, [])
        # The same Bento, serving wrongly (or not at all): nothing to keep, deployed anew below.
        with _reaped(service):
            deployer.delete_model_server(service.uuid)
        current.remove(service)
    # The new Bento on a free port first: a failure here leaves the old service untouched.
    staging = _service(target, config.model_copy(update={"port": _free_port(config.host)}), pipeline_name)
    try:
        problem = _start(staging, config.start_timeout_s) or check_service(
            f"http://{config.host}:{staging.config.port}", target
        )
        if problem:
            log = staging.status.log_file
            raise DeploymentRefused(
                f"{target.bento_tag} failed its check, so it was not deployed and "
                f"{_serving_phrase(current)} ({problem}{_last_error(log)}; its log: {log})"
            )
    finally:
        with _reaped(staging):
            staging.stop(timeout=STOP_TIMEOUT_S)
    # Through the deployer, so the store's record of each service says it stopped.
    for service in current:
        with _reaped(service):
            deployer.stop_model_server(service.uuid, timeout=STOP_TIMEOUT_S)
    new: BentoMLLocalDeploymentService | None = None
    try:
        new = _register_and_start(deployer, _service(target, config, pipeline_name), config.start_timeout_s)
        problem = check_service(url, target)
    except RuntimeError as error:
        problem = str(error)
    if problem or new is None:
        if new is not None:
            with _reaped(new):
                deployer.delete_model_server(new.uuid)
        for old in current:
            _restart(old, config.start_timeout_s)
        raise DeploymentRefused(
            f"{target.bento_tag} passed its check on a free port but not on port {config.port}, so "
            f"{_serving_phrase(current)} again ({problem})"
        )
    for old in current:
        deployer.delete_model_server(old.uuid)
    replaced = [old.config.bento_tag for old in current]
    return Deployment(target, url, str(new.uuid), _pid(new), True, replaced)


def active_deployer() -> BentoMLModelDeployer:
    """The active stack's BentoML model deployer.

    Raises:
        VtposeError: the stack has none (with the commands that add one).
    """
    from zenml.client import Client
    from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer

    deployer = Client().active_stack.model_deployer
    if not isinstance(deployer, BentoMLModelDeployer):
        stack = Client().active_stack.name
        raise VtposeError(
            f"the active ZenML stack {stack!r} has no BentoML model deployer; run `make stack`, or "
            f"`zenml model-deployer register {DEPLOYER_NAME} --flavor={DEPLOYER_FLAVOR} && "
            f"zenml stack update {stack} -d {DEPLOYER_NAME}`."
        )
    return deployer


def deployed_services(
    deployer: BentoMLModelDeployer | None = None, pipeline_name: str = DEPLOYMENT_PIPELINE
) -> list[BentoMLLocalDeploymentService]:
    """The services the deployment pipeline started (running or not), newest first."""
    deployer = deployer or active_deployer()
    services = deployer.find_model_server(
        pipeline_name=pipeline_name, pipeline_step_name=DEPLOY_STEP, service_type=_service_type()
    )
    return [cast("BentoMLLocalDeploymentService", service) for service in services]


def serving_now(port: int = DEFAULT_PORT) -> BentoMLLocalDeploymentService | None:
    """The deployed service on `port`, None when nothing was deployed there (or the stack has no deployer)."""
    try:
        services = deployed_services()
    except VtposeError:
        return None
    return next((service for service in services if service.config.port == port), None)


def _service(target: Target, config: DeploymentConfig, pipeline_name: str) -> BentoMLLocalDeploymentService:
    """ZenML's local BentoML service for `target` on `config.port` (not started, not registered)."""
    from vtpose.serving.deployment_service import PoseDeploymentConfig, PoseDeploymentService

    registered = target.source in ("production", "pinned")
    service_config = PoseDeploymentConfig(
        # model_name and model_version link the service to the model version in the dashboard; the pretrained
        # checkpoint is no version of pose-estimator (and an empty version would be read as the latest one).
        model_name=target.model_name if registered else f"{target.model_name}-{target.version}",
        model_version=target.version if registered else "",
        model_uri=f"bento:{target.bento_tag}",
        bento_tag=target.bento_tag,
        apis=list(SERVICE_APIS),
        host=config.host,
        port=config.port,
        working_dir=str(PROJECT_ROOT),
        pipeline_name=pipeline_name,
        pipeline_step_name=DEPLOY_STEP,
        # Another port would be a service the studio page and `make serve` cannot find.
        service_name=f"pose-service-{config.port}",
        environment=service_environment(),
    )
    # The endpoint is built by the class from the config (mypy reads the pydantic field as required).
    service = PoseDeploymentService(uuid=uuid.uuid4(), config=service_config)  # type: ignore[call-arg]
    service.endpoint.config.allocate_port = False
    return service


def _register_and_start(
    deployer: BentoMLModelDeployer, service: BentoMLLocalDeploymentService, timeout_s: int
) -> BentoMLLocalDeploymentService:
    """Record `service` in the ZenML store (linked to its model version), start it, record how it runs: what
    `BaseModelDeployer.deploy_model` does, for the class that serves 1.4 Bentos.

    Raises:
        RuntimeError: it did not start (its record is deleted again).
    """
    from zenml.client import Client
    from zenml.model_deployers.base_model_deployer import get_model_version_id_if_exists

    client = Client()
    config = service.config
    response = client.create_service(
        config=config,
        service_type=_service_type(),
        model_version_id=get_model_version_id_if_exists(config.model_name, config.model_version),
    )
    config.root_runtime_path = deployer.local_path
    registered = type(service)(uuid=response.id, config=config)
    registered.endpoint.config.allocate_port = False
    problem = _start(registered, timeout_s)
    if problem:
        with _reaped(registered):
            registered.stop(timeout=STOP_TIMEOUT_S)
        client.delete_service(response.id)
        raise RuntimeError(problem)
    client.update_service(
        id=registered.uuid,
        name=config.service_name,
        service_source=registered.model_dump().get("type"),
        admin_state=registered.admin_state,
        status=registered.status.model_dump(),
        endpoint=registered.endpoint.model_dump(),
        prediction_url=registered.get_prediction_url(),
        health_check_url=registered.get_healthcheck_url(),
    )
    return registered


@contextlib.contextmanager
def _reaped(service: BentoMLLocalDeploymentService) -> Iterator[None]:
    """Stop `service` inside the block; afterwards end any of its server's worker processes still alive (a worker
    whose arbiter was killed lives on, holding a model in memory)."""
    import psutil

    workers: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error, TypeError):
        workers = psutil.Process(service.status.pid).children(recursive=True)
    yield
    for worker in workers:
        with contextlib.suppress(psutil.Error):
            worker.terminate()
    _, alive = psutil.wait_procs(workers, timeout=STOP_TIMEOUT_S)
    for worker in alive:
        with contextlib.suppress(psutil.Error):
            worker.kill()


def service_environment() -> dict[str, str]:
    """The VTPOSE_* variables of the caller's environment, which the deployed service gets
    (`VTPOSE_STUDIO_AVATAR_DIR=~/my-avatars make studio`)."""
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith(SERVICE_ENV_PREFIX)}


def _environment(service: BentoMLLocalDeploymentService) -> dict[str, str]:
    return dict(getattr(service.config, "environment", None) or {})


def _restart(service: BentoMLLocalDeploymentService, timeout_s: int) -> str | None:
    """Start a stopped, recorded service again (bounded, as `_start`) and record how it runs; None when ready."""
    from zenml.client import Client

    service.endpoint.config.allocate_port = False
    problem = _start(service, timeout_s)
    Client().update_service(
        id=service.uuid,
        admin_state=service.admin_state,
        status=service.status.model_dump(),
        endpoint=service.endpoint.model_dump(),
    )
    return problem


def _service_type() -> Any:
    from zenml.integrations.bentoml.services import BentoMLLocalDeploymentService

    return BentoMLLocalDeploymentService.SERVICE_TYPE


def _start(service: BentoMLLocalDeploymentService, timeout_s: int) -> str | None:
    """Start the service's daemon and wait until /readyz answers 200; None when it does, else why not.

    ZenML's own wait (`start(timeout=...)`) counts one second per poll however long each health request hangs (a
    server whose worker keeps crashing accepts connections and never answers), so it can outlast its timeout many
    times over: this one has a deadline and notices a daemon that exited.
    """
    import psutil

    service.start(timeout=0)
    url = f"http://{service.endpoint.config.ip_address}:{service.config.port}/readyz"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = service.status.pid
        if not pid or not psutil.pid_exists(pid):
            return "its process exited"
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                service.update_status()
                return None
        time.sleep(1)
    return f"it was not ready within {timeout_s} s"


def _drop_others(deployer: BentoMLModelDeployer, services: list[BentoMLLocalDeploymentService], keep: Any) -> None:
    """Delete stale records of earlier services on the same port (stopped ones a crash left behind)."""
    for service in services:
        if service.uuid != keep.uuid:
            with _reaped(service):
                deployer.delete_model_server(service.uuid)


def _last_error(log_file: str | None) -> str:
    """The last line of a service log that names an error, as ": <line>" ("" when none)."""
    with contextlib.suppress(OSError, TypeError):
        lines = Path(str(log_file)).read_text(errors="replace").splitlines()
        errors = [line.strip() for line in lines if "Error" in line or "error:" in line]
        if errors:
            return f": {errors[-1][:300]}"
    return ""


def _serving_phrase(current: list[BentoMLLocalDeploymentService]) -> str:
    if not current:
        return "nothing was serving before"
    return f"{', '.join(service.config.bento_tag for service in current)} keeps serving"


def _pid(service: BentoMLLocalDeploymentService) -> int | None:
    return service.status.pid


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bento_args(bento: Any) -> dict[str, Any]:
    """The Bento's build arguments (`bentoml build --arg`), {} when it has none."""
    return dict(getattr(bento.info, "args", None) or {})


def _import_recorded_bento(model_name: str, version: str, bento_tag: str | None) -> None:
    """Bring the training run's Bento from the artifact store (`bento_archive`) when the local store lacks it (a
    run in containers or pods, another machine)."""
    import bentoml
    from bentoml.exceptions import NotFound
    from zenml.client import Client

    if bento_tag is None:
        return
    with contextlib.suppress(NotFound):
        bentoml.bentos.get(bento_tag)
        return
    try:
        archive = Client().get_model_version(model_name, version).get_artifact("bento_archive")
    except (KeyError, RuntimeError):
        return
    if archive is not None and (path := archive.load()) is not None:
        logger.info("importing %s from the artifact store", bento_tag)
        bentoml.bentos.import_bento(str(path))


def _multipart(field: str, path: Path) -> tuple[bytes, str]:
    boundary = f"vtpose-{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class _LogWriter:
    """stdout for packaging's progress prints, sent to the log instead (a step's stdout is its log anyway)."""

    def write(self, text: str) -> int:
        if text.strip():
            logger.info(text.rstrip())
        return len(text)

    def flush(self) -> None:
        """Nothing buffered."""


def served_line(port: int = DEFAULT_PORT) -> str:
    """One line for `vtpose pipeline summary`: what the deployment serves on `port`, or the command that serves."""
    service = serving_now(port)
    if service is None:
        return f"served: nothing deployed on port {port}; `zenml pipeline run deployment_pipeline` serves what runs"
    if not service.is_running:
        return (
            f"served: {service.config.bento_tag} is deployed on port {port} but stopped; "
            "`zenml pipeline run deployment_pipeline` starts it (or what runs now)"
        )
    return f"served: {service.config.bento_tag} on http://{service.config.host}:{port} (ZenML service {service.uuid})"
