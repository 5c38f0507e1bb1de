"""The training pipeline: ingest -> validate -> convert -> train -> evaluate -> promote -> export -> package.

With `data.sources`, each source is ingested and validated on its own, then the validated datasets are merged
(`merge_sources`) before conversion; evaluation then scores each source's val split beside the combined one.

Beside training, the production version's weights are scored on the same val split (cached by weights and data),
so evaluation and the gate compare like with like.
"""

from __future__ import annotations

from zenml import Model, pipeline

from steps import (
    convert_dataset,
    evaluate_model,
    export_variants,
    ingest_dataset,
    ingest_pretrained,
    merge_sources,
    package_model,
    production_reference,
    promote_model,
    score_production,
    train_model,
    validate_dataset,
)
from vtpose.training.config import (
    DataConfig,
    EvaluationConfig,
    PackageConfig,
    PromotionConfig,
    TrainConfig,
    ValidationConfig,
    check_gate,
    check_rule_sources,
)
from vtpose.training.registry import MODEL_NAME


@pipeline(
    model=Model(
        name=MODEL_NAME,
        description="YOLO-pose person keypoint model (COCO-17), scored with pycocotools OKS.",
        license="AGPL-3.0 (Ultralytics)",
        tags=["pose", "yolo", "coco-keypoints"],
    ),
)
def training_pipeline(
    data: DataConfig | None = None,
    validation: ValidationConfig | None = None,
    train: TrainConfig | None = None,
    evaluation: EvaluationConfig | None = None,
    promotion: PromotionConfig | None = None,
    package: PackageConfig | None = None,
) -> None:
    """Train a pose model on the configured data and decide whether it goes to production.

    A block left out of the config takes its defaults (see vtpose/training/config.py).
    """
    data = data or DataConfig()
    validation = validation or ValidationConfig()
    train = train or TrainConfig()
    evaluation = evaluation or EvaluationConfig()
    promotion = promotion or PromotionConfig()
    package = package or PackageConfig()
    check_gate(evaluation, promotion)
    check_rule_sources(data, promotion)
    if data.sources is None:
        raw_dataset = ingest_dataset(data=data)
        pretrained_weights = ingest_pretrained(data=data)
        dataset, _ = validate_dataset(raw_dataset=raw_dataset, validation=validation)
    else:
        pretrained_weights = ingest_pretrained(data=data)
        # Each source ingested and validated as a single-source run does it (its own step invocations, named after
        # it), then merged; everything downstream sees one dataset and evaluates it per source.
        validated = []
        for source in data.sources:
            raw = ingest_dataset(data=data.for_source(source), id=f"ingest_dataset_{source.label}")
            valid, _ = validate_dataset(raw_dataset=raw, validation=validation, id=f"validate_dataset_{source.label}")
            validated.append(valid)
        dataset = merge_sources(datasets=validated, sources=data.sources)
    yolo_dataset = convert_dataset(dataset=dataset)
    trained_weights, _ = train_model(
        yolo_dataset=yolo_dataset, pretrained_weights=pretrained_weights, train_config=train
    )
    production_report = score_production(
        production_weights_sha256=production_reference(), dataset=dataset, imgsz=evaluation.imgsz
    )
    report = evaluate_model(
        trained_weights=trained_weights,
        pretrained_weights=pretrained_weights,
        dataset=dataset,
        production_report=production_report,
        evaluation=evaluation,
    )
    decision = promote_model(evaluation_report=report, promotion=promotion)
    # Every variant (ONNX, OpenVINO FP32 and INT8) scored and timed; the Bento serves the one chosen.
    onnx_model, openvino_model, openvino_int8_model, variant_report = export_variants(
        trained_weights=trained_weights, dataset=dataset, package=package, after="promote_model"
    )
    package_model(
        trained_weights=trained_weights,
        promotion_decision=decision,
        package=package,
        variant_report=variant_report,
        onnx_model=onnx_model,
        openvino_model=openvino_model,
        openvino_int8_model=openvino_int8_model,
    )
