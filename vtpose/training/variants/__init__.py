"""Which exported model the Bento serves: every variant scored and timed the same way, then one rule.

The variants of one trained model are its PyTorch `.pt`, its ONNX export and its OpenVINO IR in FP32 and INT8
(NNCF post-training quantization), exported by `vtpose.backends.export.export_model_variants`. Each is scored with
the same pycocotools evaluation on the val split and timed on the machine the packaging step runs on;
`choose_variant` then picks the fastest whose AP is within `max_ap_drop` of the trained `.pt` (or the one a user
forced), and says why.

- `choice`: the rule (`choose_variant`) and what it reads and returns; `timing`: latency and the machine;
- `report`: `VariantReport`, the artifact with its text, Markdown and plot;
- `scoring`: scoring and timing exported variants into a report, and what the Bento carries from it.
"""

from __future__ import annotations

# The variant names' one home is vtpose.backends; here for callers of this package.
from vtpose.backends import VARIANTS
from vtpose.training.variants.choice import (
    AUTO,
    DEFAULT_MAX_AP_DROP,
    REFERENCE_VARIANT,
    BackendChoice,
    VariantChoice,
    VariantName,
    VariantScore,
    choose_variant,
    variant_backend,
)
from vtpose.training.variants.report import VariantReport, VariantResult
from vtpose.training.variants.scoring import bento_variants, score_model_variants, split_images
from vtpose.training.variants.timing import Latency, machine_info, measure_latencies, measure_latency

__all__ = [
    "AUTO",
    "DEFAULT_MAX_AP_DROP",
    "REFERENCE_VARIANT",
    "VARIANTS",
    "BackendChoice",
    "Latency",
    "VariantChoice",
    "VariantName",
    "VariantReport",
    "VariantResult",
    "VariantScore",
    "bento_variants",
    "choose_variant",
    "machine_info",
    "measure_latencies",
    "measure_latency",
    "score_model_variants",
    "split_images",
    "variant_backend",
]
