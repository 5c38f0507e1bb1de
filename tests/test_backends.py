"""vtpose.backends on real images: one letterbox rule, batch independence, each backend against PyTorch, the
packaged-file checks (ONNX and OpenVINO IR), and evaluation AP that does not depend on the batch size.

Tolerances (keypoints of persons PyTorch finds with score >= 0.5, joints confident (> 0.5) in both):
- ONNX Runtime, and the OpenVINO FP32 IR with f32 arithmetic: within FP32_TOLERANCE_PX of PyTorch (measured: under
  0.005 px).
- The OpenVINO FP32 IR with the device's default arithmetic (bf16 on CPUs with native bfloat16, as this VM's):
  median within BF16_MEDIAN_PX, every joint within BF16_MAX_FRACTION of the person's box diagonal (measured: median
  0.18 px, worst 1.75 px).
- OpenVINO INT8 (NNCF, mixed preset, calibrated on CALIBRATION_IMAGES train images): median error within
  INT8_MEDIAN_PX and every joint within INT8_MAX_FRACTION of the person's box diagonal (measured: median 0.8 px with
  f32 arithmetic, 1.8 px with bf16; worst 3.1% of the diagonal; box IoU >= 0.84).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vtpose.training.evaluate
from vtpose.artifacts import sha256_file
from vtpose.backends import VARIANTS, backend_for, input_shape, letterbox, nms, open_backend
from vtpose.backends.export import OpenVinoIR, cached_export, export_model_variants, model_file
from vtpose.backends.onnx import OnnxPoseModel
from vtpose.backends.packaged import load_packaged_backend
from vtpose.errors import VtposeError
from vtpose.paths import COCO_MINI_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS
from vtpose.pose import load_image
from vtpose.training.evaluate import evaluate_weights

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
VAL_DIR = COCO_MINI_DIR / "images" / "val2017"
VAL_JSON = COCO_MINI_DIR / "annotations" / "person_keypoints_val2017.json"
IMAGES = [STREAMER, *sorted(VAL_DIR.glob("*.jpg"))[:8]]
CALIBRATION_IMAGES = 30
FP32_TOLERANCE_PX = 0.05
BF16_MEDIAN_PX = 0.5
BF16_MAX_FRACTION = 0.02
INT8_MEDIAN_PX = 3.0
INT8_MAX_FRACTION = 0.06
INT8_MIN_IOU = 0.8


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pretrained checkpoint as every backend's file: .pt, .onnx, FP32 IR, INT8 IR."""
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `make data`")
    out = tmp_path_factory.mktemp("exports")
    calibration = sorted((COCO_MINI_DIR / "images" / "train2017").glob("*.jpg"))
    exported = export_model_variants(
        PRETRAINED_WEIGHTS, VARIANTS, 640, out, calibration_images=calibration, calibration_size=CALIBRATION_IMAGES
    )
    assert exported["openvino-int8"].settings["images"] == CALIBRATION_IMAGES
    return {name: model_file(model) for name, model in exported.items()}


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_export_writes_only_to_out_dir(exports: dict[str, Path]) -> None:
    assert exports["onnx"].suffix == ".onnx" and exports["onnx"].stat().st_size > 1_000_000
    assert not PRETRAINED_WEIGHTS.with_suffix(".onnx").exists()
    fp32, int8 = (OpenVinoIR(exports[v], p, 640) for v, p in (("openvino", "fp32"), ("openvino-int8", "int8")))
    assert all(path.is_file() for path in (*fp32.files, *int8.files))
    assert int8.size_bytes < fp32.size_bytes / 2  # INT8 weights: a quarter of FP32's, plus the float head
    assert not list(exports["openvino"].parent.glob(".ir-*"))  # no temporary left behind


def test_letterbox_geometry() -> None:
    """1280x720 -> 640x360 scaled, padded to 640x384 (12 px top and bottom); 500x375 -> 640x480, no padding."""
    box = letterbox(np.zeros((720, 1280, 3), dtype=np.uint8), 640)
    assert box.tensor.shape == (3, 384, 640) and box.tensor.dtype == np.float32
    assert box.gain == (0.5, 0.5) and box.pad == (0, 12)
    assert box.tensor[:, 0].max() == pytest.approx(114 / 255) and box.tensor[:, 12:372].max() == 0
    small = letterbox(np.zeros((375, 500, 3), dtype=np.uint8), 640)
    assert small.tensor.shape == (3, 480, 640) and small.pad == (0, 0)
    assert input_shape((720, 1280, 3), 640) == (384, 640) and input_shape((375, 500), 320) == (256, 320)


def test_letterbox_pixels_are_rgb_over_255_in_float32() -> None:
    """Every value is the BGR pixel's channel, reversed to RGB, divided by 255 in float32 (Ultralytics' scaling),
    exactly: on random pixels of an image that is already the model's size, so nothing is resized."""
    bgr = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    box = letterbox(bgr, 96)
    assert box.tensor.shape == (3, 64, 96) and box.tensor.flags.c_contiguous
    expected = bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    assert np.array_equal(box.tensor, expected)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.1], dtype=np.float32)
    assert nms(boxes, scores, 0.7).tolist() == [1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 2, 0, 3]


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_backend_is_chosen_by_suffix(exports: dict[str, Path]) -> None:
    assert [backend_for(exports[v]) for v in ("pytorch", "onnx", "openvino")] == ["pytorch", "onnx", "openvino"]
    assert open_backend(exports["openvino-int8"]).variant == "openvino-int8"
    with pytest.raises(VtposeError, match="unsupported weights type"):
        backend_for("model.tflite")


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
@pytest.mark.parametrize("variant", ["pytorch", "onnx"])
def test_decoding_matches_ultralytics_predict(exports: dict[str, Path], variant: str) -> None:
    """Our letterbox + decoding give `YOLO(...).predict`'s answers for a single image (its minimal rectangle)."""
    from ultralytics import YOLO

    ours, theirs = open_backend(exports[variant], device="cpu"), YOLO(str(exports[variant]), task="pose")
    for path in IMAGES[:5]:
        image = load_image(path)
        (result,) = theirs.predict([image], imgsz=640, conf=0.25, device="cpu", verbose=False)
        got = ours.predict_one(image)
        assert len(got) == len(result.boxes), path.name
        for person, box, keypoints in zip(got, result.boxes.xyxy.numpy(), result.keypoints.data.numpy(), strict=True):
            x, y, w, h = person.bbox
            np.testing.assert_allclose((x, y, x + w, y + h), box, atol=0.05)
            np.testing.assert_allclose(person.keypoints, keypoints, atol=0.05)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _openvino_cpu_default_precision() -> str:
    import openvino as ov

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
@pytest.mark.parametrize(
    ("variant", "arithmetic"),
    [("onnx", None), ("openvino", "f32"), ("openvino", None), ("openvino-int8", None)],
    ids=["onnx", "openvino-f32", "openvino-default", "openvino-int8"],
)
def test_backend_keypoints_agree_with_pytorch(exports: dict[str, Path], variant: str, arithmetic: str | None) -> None:
    """Same persons and keypoints as the .pt on real images, within the module docstring's tolerances."""
    from vtpose.backends.openvino import OpenVinoPoseModel

    reference = open_backend(PRETRAINED_WEIGHTS, device="cpu")
    model = (
        OpenVinoPoseModel(exports[variant], inference_precision=arithmetic)
        if variant.startswith("openvino")
        else open_backend(exports[variant])
    )
    int8 = variant.endswith("int8")
    # The arithmetic that must run, asked of OpenVINO here, not read from the model: f32 when forced, else the
    # device's own default (bf16 on CPUs with native bfloat16, f32 on others).
    expected = (arithmetic or _openvino_cpu_default_precision()) if variant.startswith("openvino") else "f32"
    bf16 = not int8 and expected == "bf16"
    if variant.startswith("openvino"):
        assert model.describe()["inference_precision"] == expected
    errors: list[float] = []
    for path in IMAGES:
        image = load_image(path)
        found = model.predict_one(image)
        for person in [p for p in reference.predict_one(image) if p.score >= 0.5]:
            match = max(found, key=lambda o, p=person: _iou(o.bbox, p.bbox))
            assert _iou(match.bbox, person.bbox) > (INT8_MIN_IOU if int8 else 0.99), path.name
            confident = (person.keypoints[:, 2] > 0.5) & (match.keypoints[:, 2] > 0.5)
            error = np.hypot(*(match.keypoints[confident, :2] - person.keypoints[confident, :2]).T)
            diagonal = np.hypot(person.bbox[2], person.bbox[3])
            limit = (
                INT8_MAX_FRACTION * diagonal if int8 else BF16_MAX_FRACTION * diagonal if bf16 else FP32_TOLERANCE_PX
            )
            assert error.max(initial=0.0) <= limit, f"{path.name}: {variant} keypoints off by {error.max():.2f} px"
            errors.extend(error.tolist())
    assert len(errors) > 30
    if int8 or bf16:
        assert float(np.median(errors)) <= (INT8_MEDIAN_PX if int8 else BF16_MEDIAN_PX)


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
@pytest.mark.parametrize("variant", ["pytorch", "onnx", "openvino", "openvino-int8"])
def test_an_image_answers_the_same_whatever_its_batch_mates(exports: dict[str, Path], variant: str) -> None:
    """The streamer alone, with same-shaped mates and with mixed shapes: identical persons and keypoints."""
    model = open_backend(exports[variant], conf=0.001)
    streamer = load_image(STREAMER)
    mates = [load_image(p) for p in IMAGES[1:5]]
    alone = model.predict_one(streamer)
    same_shape = model.predict([np.ascontiguousarray(streamer[:, ::-1]), streamer, streamer[::-1].copy()])[1]
    mixed = model.predict([*mates, streamer])[-1]
    for other in (same_shape, mixed):
        assert len(other) == len(alone)
        for a, b in zip(alone, other, strict=True):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            assert a.bbox == b.bbox and a.score == b.score


@pytest.mark.slow  # evaluates the whole val split twice
def test_evaluation_ap_is_the_same_for_batch_sizes_1_and_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stat equal, on the whole val split (mixed image shapes), with the PyTorch checkpoint."""
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `make data`")
    stats = {}
    for batch in (1, 8):
        monkeypatch.setattr(vtpose.training.evaluate, "PREDICT_BATCH", batch)
        stats[batch] = evaluate_weights(PRETRAINED_WEIGHTS, VAL_JSON, VAL_DIR, device="cpu").stats
    assert stats[1] == stats[8]
    assert stats[1]["AP"] == pytest.approx(0.4920, abs=5e-4)  # README "How images reach the model"


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_lone_calls_use_the_wide_session_and_concurrent_ones_the_narrow(exports: dict[str, Path]) -> None:
    """Both sessions give the same answer; which one runs depends only on whether another call is in flight."""
    model = OnnxPoseModel(exports["onnx"], threads=1, wide_threads=2)
    assert model._wide_session is not None
    used: list[object] = []
    for session in (model.session, model._wide_session):
        original = session.run

        def spy(*args: object, _session: object = session, _run=original, **kwargs: object):  # type: ignore[no-untyped-def]
            used.append(_session)
            return _run(*args, **kwargs)

        session.run = spy  # the real ONNX Runtime call, recorded
    image = load_image(STREAMER)
    alone = model.predict_one(image)
    assert used == [model._wide_session]

    used.clear()
    release = threading.Event()
    blocker = model._wide_session.run

    def slow_wide(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        release.wait(30)  # keeps the first call in flight while the second one starts
        return blocker(*args, **kwargs)

    model._wide_session.run = slow_wide
    first = threading.Thread(target=model.predict_one, args=(image,))
    first.start()
    deadline = time.monotonic() + 30  # bounded: a call that never starts fails here instead of hanging
    while model._active == 0:
        assert time.monotonic() < deadline, "the first call never started"
        time.sleep(0.001)
    concurrent = model.predict_one(image)
    release.set()
    first.join()
    assert used[0] is model.session  # the second call ran narrow while the first was in flight
    for a, b in zip(alone, concurrent, strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    assert model._active == 0


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_openvino_compiles_a_wide_and_a_narrow_model(exports: dict[str, Path]) -> None:
    """Two streams of one thread under load, one stream of every core alone; both answer the same."""
    model = open_backend(exports["openvino"], threads=1, wide_threads=2)
    assert model._narrow.get_property("NUM_STREAMS") == 2 and model._narrow.get_property("INFERENCE_NUM_THREADS") == 2
    assert model._wide.get_property("NUM_STREAMS") == 1 and model._wide.get_property("INFERENCE_NUM_THREADS") == 2
    image = load_image(STREAMER)
    wide, narrow = (
        model._forward(model.prepare(image).tensor[None], True),
        model._forward(model.prepare(image).tensor[None], False),
    )
    np.testing.assert_allclose(wide, narrow, atol=1e-3)


def _package(exports: dict[str, Path], variant: str, folder: Path) -> dict[str, object]:
    """A model folder laid out as vtpose.serving.packaging writes it, with the metadata's checksums."""
    from vtpose.backends.packaged import MODEL_FILES, variant_files

    checksums = {}
    for name in variant_files({}, variant):
        source = exports[variant] if name == MODEL_FILES[variant] else exports[variant].with_suffix(".bin")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, folder / name)
        checksums[name] = sha256_file(folder / name)
    return {"imgsz": 640, "sha256": checksums}


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_packaged_onnx_sha256_is_checked(exports: dict[str, Path], tmp_path: Path) -> None:
    metadata = _package(exports, "onnx", tmp_path)
    assert load_packaged_backend(tmp_path, metadata, "onnx").name == "onnx"
    with (tmp_path / "model.onnx").open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(VtposeError, match="does not match the packaged"):
        load_packaged_backend(tmp_path, metadata, "onnx")
    with pytest.raises(VtposeError, match="no sha256"):
        load_packaged_backend(tmp_path, {"sha256": {}}, "pytorch")


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
@pytest.mark.parametrize("part", ["model.xml", "model.bin"])
def test_a_tampered_ir_is_refused(exports: dict[str, Path], tmp_path: Path, part: str) -> None:
    """Either file of the IR changed after packaging: refused by its checksum, naming the file."""
    metadata = _package(exports, "openvino", tmp_path)
    assert load_packaged_backend(tmp_path, metadata, "openvino").describe()["precision"] == "fp32"
    with (tmp_path / "openvino" / part).open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(VtposeError, match=rf"openvino/{part}: sha256 .* does not match the packaged"):
        load_packaged_backend(tmp_path, metadata, "openvino")


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_a_corrupt_or_mislabelled_ir_is_refused_with_a_clear_message(exports: dict[str, Path], tmp_path: Path) -> None:
    """A truncated graph packaged with its own checksum, a missing .bin, and FP32 packaged as INT8."""
    metadata = _package(exports, "openvino", tmp_path)
    xml = tmp_path / "openvino" / "model.xml"
    xml.write_bytes(xml.read_bytes()[:2000])
    corrupt = {**metadata, "sha256": {**metadata["sha256"], "openvino/model.xml": sha256_file(xml)}}
    with pytest.raises(VtposeError, match="OpenVINO cannot read this IR"):
        load_packaged_backend(tmp_path, corrupt, "openvino")
    no_bin = {**metadata, "sha256": {k: v for k, v in metadata["sha256"].items() if not k.endswith(".bin")}}
    with pytest.raises(VtposeError, match=r"no sha256 for openvino/model.bin"):
        load_packaged_backend(tmp_path, no_bin, "openvino")
    mislabelled = tmp_path / "mislabelled"
    fp32_as_int8 = _package({**exports, "openvino-int8": exports["openvino"]}, "openvino-int8", mislabelled)
    with pytest.raises(VtposeError, match="packaged as openvino-int8 but the graph is fp32"):
        load_packaged_backend(mislabelled, fp32_as_int8, "openvino-int8")


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_cached_export_converts_once(exports: dict[str, Path], tmp_path: Path) -> None:
    """`.pt` -> OpenVINO through ONNX, reused the second time; an ONNX file cannot become PyTorch."""
    xml = cached_export(exports["onnx"], "openvino", 640, tmp_path)
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    stamp = xml.stat().st_mtime_ns
    assert cached_export(exports["onnx"], "openvino", 640, tmp_path) == xml and xml.stat().st_mtime_ns == stamp
    assert cached_export(exports["onnx"], "onnx", 640, tmp_path) == exports["onnx"]
    with pytest.raises(VtposeError, match="cannot run on pytorch"):
        cached_export(exports["onnx"], "pytorch", 640, tmp_path)


@pytest.mark.slow  # exports the checkpoint to ONNX and OpenVINO
def test_cached_export_from_pt_keeps_the_chain_layout_and_reuses_its_onnx(tmp_path: Path) -> None:
    """`.pt` -> OpenVINO leaves the ONNX it went through in the cache, where a later ONNX request finds it."""
    from vtpose.backends.packaged import MODEL_FILES

    xml = cached_export(PRETRAINED_WEIGHTS, "openvino", 160, tmp_path)
    (folder,) = tmp_path.iterdir()
    assert folder.name == f"yolo11n-pose-{sha256_file(PRETRAINED_WEIGHTS)[:16]}-160"
    assert xml == folder / MODEL_FILES["openvino"] and xml.with_suffix(".bin").is_file()
    onnx = folder / MODEL_FILES["onnx"]
    stamp = onnx.stat().st_mtime_ns
    assert cached_export(PRETRAINED_WEIGHTS, "onnx", 160, tmp_path) == onnx and onnx.stat().st_mtime_ns == stamp
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "model.onnx", "openvino", "openvino/model.bin", "openvino/model.xml"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("weights", "variants", "kwargs", "error", "words"),
    [
        ("model.pt", ["tensorrt"], {}, ValueError, "unknown model variant"),
        ("model.onnx", ["pytorch"], {}, VtposeError, "cannot be turned back into PyTorch"),
        ("openvino/model.xml", ["onnx"], {}, VtposeError, "starts from .pt weights"),
        ("model.pt", ["openvino-int8"], {}, VtposeError, "needs calibration images"),
        ("model.pt", ["onnx"], {}, VtposeError, "model.pt: weights file not found"),
        ("model.pt", ["onnx"], {"imgsz": 100}, ValueError, "multiple of 32"),
    ],
)
def test_the_export_chain_refuses_what_it_cannot_make_before_exporting(
    tmp_path: Path, weights: str, variants: list[str], kwargs: dict[str, int], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        export_model_variants(tmp_path / weights, variants, kwargs.get("imgsz", 160), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # exports the checkpoint to every backend (module fixture)
def test_vtpose_infer_backend_option_exports_once_and_runs_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vtpose infer --backend onnx` on .pt weights: exported into the cache, same JSON as the exported file."""
    import json

    from click.testing import CliRunner

    import vtpose.paths
    from vtpose.cli.main import main

    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `make data`")
    monkeypatch.setattr(vtpose.paths, "EXPORT_CACHE_DIR", tmp_path)
    args = ["infer", str(STREAMER), "--json"]
    forced = CliRunner().invoke(main, [*args, "--weights", str(PRETRAINED_WEIGHTS), "--backend", "onnx"])
    assert forced.exit_code == 0, forced.output
    (exported,) = tmp_path.glob("*/model.onnx")
    direct = CliRunner().invoke(main, [*args, "--weights", str(exported)])
    persons = json.loads(forced.stdout.strip().splitlines()[-1])["persons"]
    assert persons == json.loads(direct.stdout.strip().splitlines()[-1])["persons"] and persons
    refused = CliRunner().invoke(main, [*args, "--weights", str(exported), "--backend", "pytorch"])
    assert refused.exit_code == 2 and "cannot run on pytorch" in refused.output
