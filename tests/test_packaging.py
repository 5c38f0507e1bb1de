"""`package_weights`: packaging `.pt` weights by hand through the one export chain into a real Bento (in the
session's BENTOML_HOME, see conftest), and its refusals before anything is exported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vtpose.artifacts import sha256_file
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR, PRETRAINED_WEIGHTS
from vtpose.serving.packaging import package_weights

# Small enough for the export, the INT8 calibration and the build to take well under a minute on 2 busy cores.
SMALL = 160


def test_int8_packaging_carries_every_exported_file_and_serves_int8() -> None:
    import bentoml

    from vtpose.backends.packaged import load_packaged_backend

    info = package_weights(
        PRETRAINED_WEIGHTS, "hand-int8", imgsz=SMALL, backend="openvino-int8",
        int8_images=COCO_MINI_DIR / "images" / "train2017", int8_size=4,
    )  # fmt: skip
    assert info.backend_default == "openvino-int8" and info.imgsz == SMALL
    assert info.tag == f"pose-service:hand-int8-{sha256_file(PRETRAINED_WEIGHTS)[:8]}"
    model = bentoml.models.get(info.model_tag)
    # The .pt, the ONNX fallback and both IRs the chain made on the way to INT8, each with its checksum.
    expected = ["model.onnx", "model.pt", "openvino-int8/model.bin", "openvino-int8/model.xml"]
    expected += ["openvino/model.bin", "openvino/model.xml"]
    assert sorted(info.sha256) == expected
    assert {name: sha256_file(Path(model.path_of(name))) for name in expected} == info.sha256
    assert info.sha256["model.pt"] == sha256_file(PRETRAINED_WEIGHTS)
    metadata = model.info.metadata
    backend = load_packaged_backend(model.path, metadata, "openvino-int8")
    assert backend.variant == "openvino-int8" and metadata["imgsz"] == SMALL


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"backend": "openvino-int8"}, ValueError, "add openvino=True for 'openvino', int8_images=DIR"),
        ({"backend": "openvino", "int8_images": None}, ValueError, "backend 'openvino' is not packaged"),
        ({"backend": "tensorrt"}, ValueError, "'tensorrt' is not a backend"),
        ({"int8_images": "missing"}, VtposeError, "missing: INT8 calibration folder not found"),
        ({"int8_images": "empty"}, VtposeError, "empty: no .jpg or .png images to calibrate INT8 on"),
    ],
)
def test_package_weights_refuses_with_a_message_naming_the_fix(
    tmp_path: Path, kwargs: dict[str, str | None], error: type[Exception], words: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    if isinstance(kwargs.get("int8_images"), str):
        kwargs = {**kwargs, "int8_images": tmp_path / str(kwargs["int8_images"])}
    with pytest.raises(error, match=re.escape(words)):
        package_weights(PRETRAINED_WEIGHTS, "refused", imgsz=SMALL, **kwargs)  # type: ignore[arg-type]


def test_the_reused_studio_bento_is_keyed_by_the_files_a_bento_carries(tmp_path: Path) -> None:
    from vtpose.testing.local_server import bento_sources_fingerprint

    web = tmp_path / "vtpose" / "studio" / "live" / "web"
    web.mkdir(parents=True)
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "service.py").write_text("SERVICE = 1\n")
    (web / "renderer3d.js").write_text("export const SCALE = 1;\n")
    before = bento_sources_fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("not carried")
    (web / "__pycache__").mkdir()
    (web / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert bento_sources_fingerprint(tmp_path) == before  # files a Bento leaves out change nothing
    (web / "renderer3d.js").write_text("export const SCALE = 0.5;\n")
    assert bento_sources_fingerprint(tmp_path) != before  # a changed page is packaged again, not served stale
