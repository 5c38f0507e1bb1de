"""The training pipeline's parameters: one pydantic model per stage, validated before any step runs.

`configs/*.yaml` fill these under `parameters:`; unknown keys are errors that name the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vtpose.backends import VARIANTS
from vtpose.backends.export import DEFAULT_CALIBRATION_SIZE, DEFAULT_INT8_IGNORED_PATTERNS, INT8_PRESETS
from vtpose.errors import VtposeError
from vtpose.paths import resolve_project_path
from vtpose.training.bootstrap import DEFAULT_RESAMPLES, MIN_GATE_RESAMPLES
from vtpose.training.promotion import (
    DEFAULT_GATE_RULES,
    INTERVAL_RULES,
    SINGLE_FORM_METRIC,
    SINGLE_FORM_RULE,
    GateMetric,
    GateRule,
    PromotionRule,
    margin_problem,
)
from vtpose.training.train import TrainConfig
from vtpose.training.variants.choice import AUTO, DEFAULT_MAX_AP_DROP, REFERENCE_VARIANT, BackendChoice, VariantName

DataSource = Literal["coco_folder", "mpii", "mpii_mat", "coco2017"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A source's name: folder and file-name prefix in a merged dataset, and the key of its metrics.
SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _SourceKeys(_Strict):
    """The keys of one source, shared by `DataConfig` (the single-source form) and each entry of `data.sources`
    (documented on `DataConfig`)."""

    source: DataSource = "coco_folder"
    path: str = "data/coco-person-mini"
    train_split: str = "train2017"
    val_split: str = "val2017"
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    base_url: str = "http://images.cocodataset.org"
    checksums: dict[str, str] = Field(default_factory=dict)


SOURCE_KEYS = tuple(_SourceKeys.model_fields)


class SourceConfig(_SourceKeys):
    """One data source of `data.sources` (and what the single-source keys of `DataConfig` describe).

    Attributes:
        name: its name in the merged dataset (image folders and file names are prefixed with it, so two sources
            cannot collide) and in per-source metrics and gate rules; defaults to the last part of `path`.
        source / path / train_split / val_split / base_url / checksums: as `DataConfig`'s keys of the same name.
        val_fraction: the split rule of "mpii" and "mpii_mat": 0 trains and evaluates on all images (one split),
            above 0 holds that share of images out for evaluation (ranked by sha256 of the file name).
        weight: how often its training images are sampled per epoch, relative to once each: the source
            contributes round(weight x its training images) entries to the training list (halves rounded up);
            every image appears floor(weight) or floor(weight) + 1 times, the extra ones the first by sha256 of
            their file name (`vtpose.data.merge.train_list`).
    """

    name: str | None = Field(None, pattern=SOURCE_NAME_PATTERN)
    weight: float = Field(1.0, gt=0.0, le=1000.0)

    @property
    def label(self) -> str:
        """The source's name: `name`, else the last part of its path."""
        return self.name or Path(self.path).name


class DataConfig(_SourceKeys):
    """Where the data and the pretrained checkpoint come from.

    Attributes:
        source: "coco_folder" (images/{split} + annotations/person_keypoints_{split}.json), "mpii" (mmpose
            JSON, mapped to COCO-17), "mpii_mat" (MPII's own mpii_human_pose_v1_u12_1.mat beside images/, mapped
            the same way), or "coco2017" (the official archives, downloaded and checked).
        path: the folder for coco_folder, mpii and mpii_mat; the download cache for coco2017. Relative paths are
            resolved against the project root.
        train_split / val_split: split names (COCO folder and archives).
        val_fraction: mpii and mpii_mat: share of images held out for evaluation (0: one split for both).
        base_url: where coco2017 archives are fetched from (a mirror, or a server on 127.0.0.1 in tests).
        checksums: archive file name -> expected md5 or sha256 hex digest (length tells which).
        sources: several sources instead of the keys above (`SourceConfig` each: its own source, path, split
            rule and weight): each is ingested and validated on its own, then they are merged into one dataset
            (`vtpose.data.merge`) that trains on all of them and is evaluated per source. Giving it together with
            a single-source key set to anything but its default is an error.
        pretrained: the COCO-pretrained checkpoint: the evaluation baseline and the fine-tuning start.
        dvc_remote: when set, the ingestion steps read `path` (coco_folder, mpii, mpii_mat) and `pretrained` from
            this DVC remote URL, at the version pinned by data.dvc, instead of the project folder: how a step
            container or a Kubernetes pod, which sees no host path, gets the data (README: Containers and
            Kubernetes).
    """

    sources: list[SourceConfig] | None = None
    pretrained: str = "data/pretrained/yolo11n-pose.pt"
    dvc_remote: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> DataConfig:
        if self.sources is None:
            return self
        # By value, not by `model_fields_set`: ZenML hands a step the full dump of this model back, defaults and all.
        defaults = DataConfig.model_fields
        single = [
            key for key in SOURCE_KEYS if getattr(self, key) != defaults[key].get_default(call_default_factory=True)
        ]
        if single:
            keys = ", ".join(f"data.{key}" for key in single)
            raise ValueError(
                f"both data.sources and single-source keys ({keys}) are given; move them into an entry of "
                "data.sources, or drop data.sources"
            )
        if not self.sources:
            raise ValueError("data.sources is empty; list at least one source, or drop the key for data.source")
        names = [s.label for s in self.sources]
        bad = [n for n in names if not re.fullmatch(SOURCE_NAME_PATTERN, n)]
        if bad:
            raise ValueError(
                f"data.sources: {bad[0]!r} (from its path) is not a usable source name; give the entry a `name:` of "
                "letters, digits, '.', '_' or '-'"
            )
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"data.sources names {', '.join(twice)} more than once; give each entry its own `name:`")
        return self

    def source_configs(self) -> list[SourceConfig]:
        """The sources: `sources`, or the single-source keys as a one-entry list."""
        if self.sources is not None:
            return list(self.sources)
        return [SourceConfig(**{key: getattr(self, key) for key in SOURCE_KEYS})]

    def for_source(self, source: SourceConfig) -> DataConfig:
        """The single-source config that ingests `source` (with this config's pretrained and dvc_remote)."""
        keys = {key: getattr(source, key) for key in SOURCE_KEYS}
        return DataConfig(**keys, pretrained=self.pretrained, dvc_remote=self.dvc_remote)


class ValidationConfig(_Strict):
    """What to do with records that fail validation: stop the run ("fail") or drop them and say so ("skip")."""

    on_error: Literal["fail", "skip"] = "fail"


class EvaluationConfig(_Strict):
    """How the val split is scored.

    The production version, if there is one, is always scored on the same split beside the trained model.

    Attributes:
        imgsz: inference size for evaluation.
        compare_pretrained: also score the pretrained checkpoint on the same split, side by side.
        previews: how many val images with predicted skeletons go into the report.
        bootstrap_resamples: rounds of the paired bootstrap over val images that puts a 95% interval on every
            stat and on every difference between the models (0: no intervals, and only rule no_worse can gate).
        bootstrap_seed: the bootstrap's seed, so a run's intervals are reproducible.
    """

    imgsz: int = Field(640, ge=32, multiple_of=32)
    compare_pretrained: bool = True
    previews: int = Field(6, ge=0, le=24)
    bootstrap_resamples: int = Field(DEFAULT_RESAMPLES, ge=0, le=100_000)
    bootstrap_seed: int = Field(0, ge=0)


class PromotionConfig(_Strict):
    """The quality gate (vtpose/training/promotion.py).

    Two forms: `rules`, a list of per-metric rules that must all pass, or the single-rule form `metric` + `rule`
    (+ `margin`) of configs written before the list, read as a one-rule list. Giving both is an error.

    Attributes:
        rules: each {metric, rule, margin} (`GateRule`): metric one of AP, AP50, AP75, APm, APl, AR; rule
            no_worse (point estimates, ties pass), not_significantly_worse (the paired 95% interval of
            candidate - reference reaches -margin or above) or significantly_better (its lower bound is above
            0); margin only with not_significantly_worse, in units of the metric (0.01 = one AP point). None (the
            key left out) with no single-rule key: `DEFAULT_GATE_RULES`, as configs/training.yaml spells them.
        metric / rule / margin: the single-rule form; a key left out means AP, significantly_better, 0.
        fail_on_reject: end the run with an error when the gate rejects the model.
        test_only: a config for tests (lenient rules): its runs move the production stage only in a test store
            (ENV_TEST_STORE set to 1, as tests/conftest.py does), never in a user's.
    """

    rules: list[GateRule] | None = None
    metric: GateMetric | None = None
    rule: PromotionRule | None = None
    margin: float | None = Field(None, ge=0.0, lt=1.0)
    fail_on_reject: bool = False
    test_only: bool = False

    def _single_form_keys(self) -> list[str]:
        return [key for key in ("metric", "rule", "margin") if getattr(self, key) is not None]

    @model_validator(mode="after")
    def _one_form(self) -> PromotionConfig:
        single = self._single_form_keys()
        if self.rules is not None and single:
            keys = ", ".join(f"promotion.{key}" for key in single)
            raise ValueError(
                f"both promotion.rules and the single-rule form ({keys}) are given; keep one: move the single rule "
                "into the rules list as {metric, rule, margin}, or drop promotion.rules"
            )
        if self.rules is not None and not self.rules:
            raise ValueError("promotion.rules is empty; list at least one rule, or drop the key for the default rules")
        if single:
            problem = margin_problem(self.rule or SINGLE_FORM_RULE, self.margin or 0.0)
            if problem:
                raise ValueError(problem)
        return self

    def gate_rules(self) -> list[GateRule]:
        """The rules the gate applies, whichever form the config used."""
        if self.rules is not None:
            return list(self.rules)
        if self._single_form_keys():
            return [
                GateRule(
                    metric=self.metric or SINGLE_FORM_METRIC,
                    rule=self.rule or SINGLE_FORM_RULE,
                    margin=self.margin or 0.0,
                )
            ]
        return list(DEFAULT_GATE_RULES)

    def rule_key(self, index: int) -> str:
        """Where rule `index` of `gate_rules()` is set in the config, for messages: `promotion.rules[1].rule`."""
        if self.rules is None and self._single_form_keys():
            return "promotion.rule"
        return f"promotion.rules[{index}].rule" if self.rules is not None else "promotion.rules (the default)"


def check_gate(evaluation: EvaluationConfig, promotion: PromotionConfig) -> None:
    """Every interval rule of the gate must have the intervals it reads.

    Raises:
        VtposeError: an interval rule with too few bootstrap resamples, naming both keys and the fix.
    """
    for index, gate_rule in enumerate(promotion.gate_rules()):
        if gate_rule.rule in INTERVAL_RULES and evaluation.bootstrap_resamples < MIN_GATE_RESAMPLES:
            raise VtposeError(
                f"parameters.{promotion.rule_key(index)} {gate_rule.rule} (on {gate_rule.metric}) reads the "
                f"bootstrap interval, but parameters.evaluation.bootstrap_resamples is "
                f"{evaluation.bootstrap_resamples}; set it to at least {MIN_GATE_RESAMPLES} "
                f"({DEFAULT_RESAMPLES} recommended) or use rule no_worse."
            )


def check_rule_sources(data: DataConfig, promotion: PromotionConfig) -> None:
    """Every gate rule that names a source (`source:`) names one of `data.sources`.

    Raises:
        VtposeError: naming the rule, the unknown source and the configured ones.
    """
    names = [s.label for s in data.source_configs()] if data.sources is not None else []
    for index, gate_rule in enumerate(promotion.gate_rules()):
        if gate_rule.source is not None and gate_rule.source not in names:
            configured = ", ".join(names) if names else "none: data.sources is not set, so rules judge the one source"
            raise VtposeError(
                f"parameters.{promotion.rule_key(index).removesuffix('.rule')}.source {gate_rule.source!r} is not a "
                f"configured source (data.sources: {configured}); name one of them or drop `source:` to judge the "
                "combined val set."
            )


Int8Preset = Literal[INT8_PRESETS]  # type: ignore[valid-type]


class IgnoredScopeConfig(_Strict):
    """Operations NNCF leaves in floating point (`nncf.IgnoredScope`).

    Attributes:
        names: exact OpenVINO operation names.
        patterns: regular expressions over operation names; by default the head's DFL box decoding and its
            sigmoids, which Ultralytics also keeps in float (an empty list quantizes them too).
        types: operation types (e.g. "Sigmoid", "Multiply").
    """

    names: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_INT8_IGNORED_PATTERNS))
    types: list[str] = Field(default_factory=list)


class Int8Config(_Strict):
    """OpenVINO INT8 by NNCF post-training quantization, calibrated on the run's own training split.

    Attributes:
        calibration_size: training images NNCF calibrates on (the whole split if it has fewer).
        preset: "mixed" (symmetric weights, asymmetric activations: what Ultralytics uses, suits SiLU outputs) or
            "performance" (symmetric both; faster on some CPUs, usually less accurate).
        ignored_scope: operations kept in floating point.
    """

    calibration_size: int = Field(DEFAULT_CALIBRATION_SIZE, ge=1, le=10_000)
    preset: Int8Preset = "mixed"
    ignored_scope: IgnoredScopeConfig = Field(default_factory=IgnoredScopeConfig)


class PackageConfig(_Strict):
    """Packaging the model as a BentoML service, served by the fastest exported variant accurate enough.

    Attributes:
        enabled: build the Bento at the end of the run.
        only_if_promoted: package only a model that reached production.
        imgsz: the image size the model is exported for, scored and timed at, and the service predicts at.
        variants: what is exported, scored on the val split and timed ("pytorch", the trained .pt, is the
            reference and always included).
        max_ap_drop: AP (0-1 scale) a variant may lose against the trained .pt and still be served.
        backend: "auto" (the rule above) or a variant to serve whatever the scores say.
        int8: how the OpenVINO INT8 variant is quantized.
        latency_runs / latency_warmup: timed and untimed single-image calls per variant (median reported).
    """

    enabled: bool = True
    only_if_promoted: bool = False
    imgsz: int = Field(640, ge=32, multiple_of=32)
    variants: list[VariantName] = Field(default_factory=lambda: list(VARIANTS))
    max_ap_drop: float = Field(DEFAULT_MAX_AP_DROP, ge=0.0, le=1.0)
    backend: BackendChoice = AUTO
    int8: Int8Config = Field(default_factory=Int8Config)
    latency_runs: int = Field(15, ge=1, le=1000)
    latency_warmup: int = Field(3, ge=0, le=100)

    @model_validator(mode="after")
    def _backend_is_exported(self) -> PackageConfig:
        if REFERENCE_VARIANT not in self.variants:
            raise ValueError(
                f"variants {self.variants} must include {REFERENCE_VARIANT!r}, the trained weights every variant is "
                "compared with"
            )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants {self.variants} lists a variant twice")
        if self.backend != AUTO and self.backend not in self.variants:
            raise ValueError(
                f"backend {self.backend!r} is not among variants {self.variants}; add it there or set backend: auto"
            )
        return self


# The pipeline's parameter blocks, by name, in the order `training_pipeline` takes them.
PIPELINE_PARAMETERS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "validation": ValidationConfig,
    "train": TrainConfig,
    "evaluation": EvaluationConfig,
    "promotion": PromotionConfig,
    "package": PackageConfig,
}


def check_run_config(path: Path) -> dict[str, BaseModel]:
    """Pre-flight check of a pipeline run config: every parameter block parsed, local paths present.

    Raises:
        VtposeError: one message naming the file, the key and the fix.
    """
    import difflib

    import yaml

    if not path.is_file():
        raise VtposeError(f"{path}: config not found; pass -c configs/training.yaml or another file in configs/.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise VtposeError(f"{path}: not valid YAML ({error}); fix the file.") from error
    parameters = raw.get("parameters") or {}
    unknown = set(parameters) - set(PIPELINE_PARAMETERS)
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, PIPELINE_PARAMETERS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(PIPELINE_PARAMETERS)}"
        raise VtposeError(f"{path}: parameters.{key} is not a pipeline parameter; {hint}")
    parsed: dict[str, BaseModel] = {}
    for name, model in PIPELINE_PARAMETERS.items():
        try:
            parsed[name] = model(**(parameters.get(name) or {}))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
                fields = list(model.model_fields)
                close = difflib.get_close_matches(str(first["loc"][0]), fields, n=1)
                message = f"unknown key; {f'did you mean {close[0]!r}' if close else 'allowed: ' + ', '.join(fields)}"
            raise VtposeError(f"{path}: parameters.{where}: {message}") from error
    evaluation, promotion = parsed["evaluation"], parsed["promotion"]
    assert isinstance(evaluation, EvaluationConfig) and isinstance(promotion, PromotionConfig)
    try:
        check_gate(evaluation, promotion)
    except VtposeError as error:
        raise VtposeError(f"{path}: {error}") from error
    data = parsed["data"]
    assert isinstance(data, DataConfig)
    try:
        check_rule_sources(data, promotion)
    except VtposeError as error:
        raise VtposeError(f"{path}: {error}") from error
    local = resolve_project_path(data.pretrained)
    if not local.exists():
        raise VtposeError(f"{path}: parameters.data.pretrained: {local} does not exist; run `make data` (dvc pull).")
    for index, source in enumerate(data.source_configs()):
        local = resolve_project_path(source.path)
        if source.source != "coco2017" and not local.exists():
            key = f"sources[{index}].path" if data.sources is not None else "path"
            raise VtposeError(f"{path}: parameters.data.{key}: {local} does not exist; run `make data` (dvc pull).")
    return parsed
