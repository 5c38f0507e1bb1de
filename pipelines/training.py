"""The training pipeline: ingest -> validate -> convert -> train -> evaluate -> promote -> export -> package.

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
    raw_dataset = ingest_dataset(data=data)
    pretrained_weights = ingest_pretrained(data=data)
    dataset, _ = validate_dataset(raw_dataset=raw_dataset, validation=validation)
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
