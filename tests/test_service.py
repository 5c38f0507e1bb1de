"""The pose service, end to end: build the Bento with `build_bento`, start the real server on 127.0.0.1, call it.

One module-scoped server (1 worker, the default ONNX variant) in an isolated BENTOML_HOME; every check below talks
HTTP to it. A second one, forced to OpenVINO INT8 with VTPOSE_BACKEND, checks that the forced variant is what runs
and what the answers say.
"""

from __future__ import annotations

import io
import json
import marshal
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from struct import pack
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from vtpose.backends import PoseBackend, open_backend
from vtpose.errors import RequestRejected
from vtpose.keypoints import NUM_KEYPOINTS
from vtpose.paths import COCO_MINI_DIR, MEDIA_DIR, PRETRAINED_WEIGHTS, PROJECT_ROOT
from vtpose.pose import load_image
from vtpose.serving.decoding import decode_image
from vtpose.serving.limits import ServingLimits
from vtpose.testing.local_server import package_bento, serve_bento, start_bento, stop

pytestmark = pytest.mark.slow

STREAMER = MEDIA_DIR / "game-streamer-tips.jpg"
VAL_IMAGES = sorted((COCO_MINI_DIR / "images" / "val2017").glob("*.jpg"))[:2]
MAX_IMAGE_BYTES = 1_000_000  # small, so the over-limit test needs only a 1 MB upload
MAX_BATCH = 4
READY_TIMEOUT_S = 120
INT8_CALIBRATION_IMAGES = 20


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`build_bento` on the pretrained checkpoint, in a fresh BENTOML_HOME (a subprocess: BentoML reads it once)."""
    if not PRETRAINED_WEIGHTS.is_file():
        pytest.skip(f"{PRETRAINED_WEIGHTS} missing; run `dvc pull`")
    return package_bento(
        PRETRAINED_WEIGHTS, "7", tmp_path_factory.mktemp("bentoml"),
        *("--openvino", "--int8-images", str(COCO_MINI_DIR / "images" / "train2017")),
        *("--int8-size", str(INT8_CALIBRATION_IMAGES)),
    )  # fmt: skip


@contextmanager
def _serve(bento: dict[str, Any], log_dir: Path, **env_extra: str) -> Iterator[str]:
    """`bentoml serve <tag>` on a free loopback port; the base URL once /readyz answers 200."""
    with serve_bento(bento["tag"], {**bento["env"], **env_extra}, bento["home"], log_dir / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def server(bento: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Bento's default variant (ONNX), with small limits for the limit tests."""
    env = {"VTPOSE_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES), "VTPOSE_MAX_BATCH_IMAGES": str(MAX_BATCH)}
    # No bytecode in the Bento before it serves, and the server writes what it compiles (an empty value unsets
    # it): what appears is what the server imported from the Bento (see the cwd test).
    for cache in list((Path(bento["path"]) / "src").rglob("__pycache__")):
        shutil.rmtree(cache)
    env["PYTHONDONTWRITEBYTECODE"] = ""
    with _serve(bento, tmp_path_factory.mktemp("serve"), **env) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def direct(bento: dict[str, Any]) -> PoseBackend:
    """The packaged ONNX file, run in-process without the server."""
    onnx = bento["home"] / "models" / Path(bento["model_tag"].replace(":", "/")) / "model.onnx"
    return open_backend(onnx, imgsz=bento["imgsz"])


def _post_image(client: httpx.Client, route: str, path: Path, content_type: str = "image/jpeg") -> httpx.Response:
    return client.post(route, files={"image": (path.name, path.read_bytes(), content_type)})


def _assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and "error" in body, body
    text = json.dumps(body).lower()
    for word in words:
        assert word.lower() in text, (word, body)


def test_build_bento_info(bento: dict[str, Any]) -> None:
    assert bento["tag"].startswith("pose-service:7-")
    assert bento["model_tag"] == "pose-estimator:" + bento["tag"].split(":")[1]
    assert bento["model_version"] == "7"
    assert set(bento["sha256"]) == {
        "model.pt", "model.onnx", "openvino/model.xml", "openvino/model.bin",
        "openvino-int8/model.xml", "openvino-int8/model.bin",
    }  # fmt: skip
    assert bento["backend_default"] == "onnx"
    assert bento["size_bytes"] > 5_000_000  # code plus the model files
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "list", "-o", "json"],
        env=bento["env"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert bento["tag"] in {b["tag"] for b in json.loads(listed.stdout)}


@pytest.mark.parametrize("path", [STREAMER, *VAL_IMAGES], ids=lambda p: p.name)
def test_predict_matches_direct_prediction(client: httpx.Client, direct: PoseBackend, path: Path) -> None:
    response = _post_image(client, "/predict", path)
    assert response.status_code == 200, response.text
    body = response.json()
    image = load_image(path)
    assert body["image"] == {"width": image.shape[1], "height": image.shape[0]}
    assert body["model_version"] == "7+onnx"
    expected = direct.predict_one(image)
    assert len(body["persons"]) == len(expected) > 0
    for got, want in zip(body["persons"], expected, strict=True):
        assert len(got["bbox"]) == 4 and 0 <= got["score"] <= 1
        assert len(got["keypoints"]) == NUM_KEYPOINTS and all(len(k) == 3 for k in got["keypoints"])
        assert got["score"] == pytest.approx(want.score, abs=0.01)
        kpts = np.asarray(got["keypoints"])
        confident = want.keypoints[:, 2] > 0.5
        np.testing.assert_allclose(kpts[confident, :2], want.keypoints[confident, :2], atol=1.0)


@pytest.mark.parametrize("path", [STREAMER, *VAL_IMAGES], ids=lambda p: p.name)
def test_predict_and_vtpose_infer_give_the_same_keypoints(
    client: httpx.Client, bento: dict[str, Any], path: Path
) -> None:
    """The same image and weights (the packaged ONNX file): the served JSON and the command's JSON are equal."""
    onnx = bento["home"] / "models" / Path(bento["model_tag"].replace(":", "/")) / "model.onnx"
    served = _post_image(client, "/predict", path).json()
    command = subprocess.run(
        [str(Path(sys.executable).with_name("vtpose")), "infer", str(path), "--weights", str(onnx), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    inferred = json.loads(command.stdout)
    assert inferred["image"] == served["image"]
    assert inferred["persons"] == served["persons"] and served["persons"]


def test_model_endpoint_says_what_runs(client: httpx.Client, bento: dict[str, Any]) -> None:
    info = client.get("/model")
    assert info.status_code == 200, info.text
    # Packaged by hand (`vtpose model package`): nothing vouches for it, and it says so.
    assert info.json() == {
        "model_version": "7+onnx", "model_tag": bento["model_tag"], "source": "packaged",
        "description": "pose-estimator version 7 (packaged by hand), onnx", "backend": "onnx", "precision": "fp32",
        "variant": "onnx", "device": "cpu", "imgsz": 640, "weights": "model.onnx", "live_imgsz": 480,
    }  # fmt: skip
    refused = client.post("/model")
    assert refused.status_code == 405 and refused.json()["status"] == 405


def test_a_forced_variant_is_what_runs(bento: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    """VTPOSE_BACKEND=openvino-int8: /model and every answer say so, and the answers are the INT8 IR's own."""
    model_dir = bento["home"] / "models" / Path(bento["model_tag"].replace(":", "/"))
    int8 = open_backend(model_dir / "openvino-int8" / "model.xml", imgsz=bento["imgsz"])
    with (
        _serve(bento, tmp_path_factory.mktemp("serve-int8"), VTPOSE_BACKEND="openvino-int8") as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        info = http.get("/model").json()
        assert (info["backend"], info["precision"], info["variant"]) == ("openvino", "int8", "openvino-int8")
        assert info["model_version"] == "7+openvino-int8"
        body = _post_image(http, "/predict", STREAMER).json()
        batch = http.post(
            "/predict_batch", files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in VAL_IMAGES]
        ).json()
    assert body["model_version"] == batch["model_version"] == "7+openvino-int8"
    assert body["persons"] == [p.to_json() for p in int8.predict_one(load_image(STREAMER))]
    for result, path in zip(batch["results"], VAL_IMAGES, strict=True):
        assert result["persons"] == [p.to_json() for p in int8.predict_one(load_image(path))]


def test_predict_batch(client: httpx.Client, direct: PoseBackend) -> None:
    paths = [STREAMER, *VAL_IMAGES]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    response = client.post("/predict_batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(paths)
    # The server letterboxes every image to its own rectangle (images of one shape share a model call), so each
    # image of a batch gets the answer it gets alone: compare with single-image inference in-process.
    for result, path in zip(results, paths, strict=True):
        image = load_image(path)
        assert result["image"] == {"width": image.shape[1], "height": image.shape[0]}
        want = direct.predict_one(image)
        assert len(result["persons"]) == len(want) > 0
        for got, person in zip(result["persons"], want, strict=True):
            confident = person.keypoints[:, 2] > 0.5
            kpts = np.asarray(got["keypoints"])
            np.testing.assert_allclose(kpts[confident, :2], person.keypoints[confident, :2], atol=1.0)


def test_concurrent_requests_get_their_own_answers(server: str) -> None:
    """Requests batched together on the server each get the answer for their own image, all 200."""
    paths = [STREAMER, *VAL_IMAGES] * 4
    with httpx.Client(base_url=server, timeout=60) as http:
        alone = {p: _post_image(http, "/predict", p).json()["persons"] for p in set(paths)}

    def post(path: Path) -> tuple[Path, httpx.Response]:
        with httpx.Client(base_url=server, timeout=60) as http:
            return path, _post_image(http, "/predict", path)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, paths))
    for path, response in answers:
        assert response.status_code == 200, response.text
        got, want = response.json()["persons"], alone[path]
        assert len(got) == len(want), path.name
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=0.05)


def test_render_png_has_image_size(client: httpx.Client) -> None:
    response = _post_image(client, "/render", STREAMER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    png = Image.open(io.BytesIO(response.content))
    assert png.format == "PNG"
    assert png.size == Image.open(STREAMER).size
    # Skeletons were drawn: the picture differs from the plain decoded image.
    assert (
        np.abs(np.asarray(png.convert("RGB"), dtype=np.int16) - np.asarray(Image.open(STREAMER).convert("RGB"))).max()
        > 50
    )


@pytest.mark.parametrize(
    ("fields", "expected_size"),
    [
        ({"style": "avatar", "avatar": "robot", "background": "beach"}, "background"),
        ({"style": "avatar-on-original"}, "image"),
    ],
)
def test_render_avatar_uses_the_studio_renderer(
    client: httpx.Client, fields: dict[str, str], expected_size: str
) -> None:
    from vtpose.studio.avatar import background_files

    with STREAMER.open("rb") as f:
        response = client.post("/render", files={"image": (STREAMER.name, f, "image/jpeg")}, data=fields)
    assert response.status_code == 200, response.text
    png = Image.open(io.BytesIO(response.content))
    size_of = background_files()["beach"] if expected_size == "background" else STREAMER
    assert png.format == "PNG" and png.size == Image.open(size_of).size


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"style": "avatar", "avatar": "../../etc/passwd"}, "avatar"),
        ({"style": "avatar", "background": "/etc/hosts"}, "background"),
    ],
)
def test_render_refuses_anything_but_prepared_names(client: httpx.Client, fields: dict[str, str], field: str) -> None:
    with STREAMER.open("rb") as f:
        response = client.post("/render", files={"image": (STREAMER.name, f, "image/jpeg")}, data=fields)
    assert response.status_code == 400
    assert response.json()["field"] == field and "prepared" in response.json()["error"]


def test_render_avatar_of_nobody_is_a_422(client: httpx.Client) -> None:
    empty = np.full((240, 320, 3), 200, np.uint8)
    _, jpeg = cv2.imencode(".jpg", empty)
    response = client.post(
        "/render", files={"image": ("empty.jpg", jpeg.tobytes(), "image/jpeg")}, data={"style": "avatar"}
    )
    assert response.status_code == 422 and response.json()["field"] == "image"


def _bomb_png(side: int = 30000) -> bytes:
    """A valid PNG header declaring side x side 1-bit pixels, with all-zero compressed rows (a few hundred KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return pack(">I", len(data)) + kind + data + pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _noise_png(nbytes: int) -> bytes:
    side = int((nbytes / 3) ** 0.5) + 8
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


BAD_INPUTS = {
    "text-file": (("notes.txt", b"not an image\n", "text/plain"), 400, ("content type",)),
    "text-as-jpeg": (("notes.jpg", b"not an image\n", "image/jpeg"), 415, ("not a readable image",)),
    "empty": (("empty.jpg", b"", "image/jpeg"), 400, ("empty",)),
    "truncated-jpeg": (("cut.jpg", STREAMER.read_bytes()[:20000], "image/jpeg"), 400, ("truncated",)),
    "wrong-content-type": (("x.json", b'{"a": 1}', "application/json"), 400, ("content type",)),
    "over-byte-limit": (("big.png", _noise_png(MAX_IMAGE_BYTES + 1000), "image/png"), 413, ("limit",)),
    "decompression-bomb": (("bomb.png", _bomb_png(), "image/png"), 413, ("pixels",)),
}


@pytest.mark.parametrize("route", ["/predict", "/render"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_4xx_json_error(client: httpx.Client, route: str, case: str) -> None:
    part, status, words = BAD_INPUTS[case]
    _assert_error(client.post(route, files={"image": part}), status, *words)


@pytest.mark.parametrize("case", ["text-as-jpeg", "truncated-jpeg", "over-byte-limit", "decompression-bomb"])
def test_uploads_are_refused_by_the_one_decoder(client: httpx.Client, case: str) -> None:
    """The server answers word for word what vtpose.serving.decoding refuses under the limits it was started with
    (the live socket's frames go through the same function: tests/test_decoding.py)."""
    (name, data, content_type), _, _ = BAD_INPUTS[case]
    policy = ServingLimits(max_image_bytes=MAX_IMAGE_BYTES, max_batch_images=MAX_BATCH).image_policy()
    with pytest.raises(RequestRejected) as expected:
        decode_image(data, policy, field="images[1]")
    batch = [("images", (STREAMER.name, STREAMER.read_bytes(), "image/jpeg")), ("images", (name, data, content_type))]
    response = client.post("/predict_batch", files=batch)
    assert (response.status_code, response.json()) == (expected.value.status, expected.value.to_json())


def test_bad_requests_without_an_image(client: httpx.Client) -> None:
    _assert_error(client.post("/predict"), 400, "image")  # no body at all
    _assert_error(client.post("/predict", content=b"\xff\xd8", headers={"content-type": "image/jpeg"}), 400)
    _assert_error(client.post("/predict", files={"photo": ("a.txt", b"hello", "text/plain")}), 400, "image")


def test_unknown_binary_field_is_a_4xx(client: httpx.Client) -> None:
    # BentoML alone would json.loads() the binary part (a 500); MultipartFieldCheck answers 400 naming it.
    response = client.post("/predict", files={"photo": ("a.jpg", STREAMER.read_bytes(), "image/jpeg")})
    _assert_error(response, 400, "photo", "`image`")
    both = {"image": ("a.jpg", STREAMER.read_bytes(), "image/jpeg"), "extra": ("b.jpg", b"\xff\xd8\xff", "image/jpeg")}
    _assert_error(client.post("/render", files=both), 400, "extra")
    batch = [("images", (STREAMER.name, STREAMER.read_bytes(), "image/jpeg")), ("image", ("a.jpg", b"\x00", "x/y"))]
    _assert_error(client.post("/predict_batch", files=batch), 400, "`images`")


def test_batch_limits(client: httpx.Client) -> None:
    files = [("images", (STREAMER.name, STREAMER.read_bytes(), "image/jpeg"))] * (MAX_BATCH + 1)
    _assert_error(client.post("/predict_batch", files=files), 413, "batch limit")
    bad = [files[0], ("images", ("cut.jpg", STREAMER.read_bytes()[:20000], "image/jpeg"))]
    _assert_error(client.post("/predict_batch", files=bad), 400, "images[1]", "truncated")


def test_server_survives_bad_input(client: httpx.Client) -> None:
    """After every bad request above, the same worker still answers a good one."""
    for case in BAD_INPUTS.values():
        client.post("/predict", files={"image": case[0]})
    assert _post_image(client, "/predict", STREAMER).status_code == 200
    assert client.get("/livez").status_code == 200


def test_health_metrics_and_openapi(client: httpx.Client) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200
    _post_image(client, "/predict", STREAMER)
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    for route in ("/predict", "/predict_batch", "/render"):
        assert f'endpoint="{route}"' in metrics.text
    spec = client.get("/docs.json").json()
    for route in ("/predict", "/predict_batch", "/render"):
        operation = spec["paths"][route]["post"]
        assert "multipart/form-data" in operation["requestBody"]["content"]
        assert operation["responses"]["200"]["content"]
    assert "image/png" in spec["paths"]["/render"]["post"]["responses"]["200"]["content"]


def _server_processes(url: str) -> list[int]:
    """The pids of the `bentoml serve` listening at `url` and of its descendants (the workers)."""
    command = ["--port", url.rsplit(":", 1)[1]]  # as vtpose.testing.local_server.bentoml_command writes it
    parents = {}  # pid -> parent pid, from /proc/PID/stat (its 4th field)
    for entry in Path("/proc").iterdir():
        stat = _read_proc(entry, "stat").rsplit(b")", 1)[-1].split()  # after the command name, which may hold spaces
        if entry.name.isdigit() and stat:
            parents[int(entry.name)] = int(stat[1])
    serving = [pid for pid in parents if _has_words(_read_proc(Path(f"/proc/{pid}"), "cmdline").split(b"\0"), command)]
    assert len(serving) == 1, f"no single `bentoml serve {' '.join(command)}` among the processes: {serving}"
    family = set(serving)
    while grown := {pid for pid, parent in parents.items() if parent in family} - family:
        family |= grown
    return sorted(family)


def _has_words(words: list[bytes], wanted: list[str]) -> bool:
    encoded = [w.encode() for w in wanted]
    return any(words[i : i + len(encoded)] == encoded for i in range(len(words)))


def _read_proc(process: Path, name: str) -> bytes:
    try:
        return (process / name).read_bytes()
    except OSError:  # the process ended while we looked, or is not ours
        return b""


def test_project_root_is_not_the_server_cwd(bento: dict[str, Any], server: str) -> None:
    """The Bento carries its own copy of the code, and the running server uses it: neither the server nor its
    workers run in this checkout, and the package they imported is the Bento's copy."""
    src = Path(bento["path"]) / "src"
    assert not (src / "data").exists()
    assert PROJECT_ROOT.joinpath("service", "service.py").read_bytes() == (src / "service" / "service.py").read_bytes()
    pids = _server_processes(server)
    assert len(pids) >= 2, pids  # the arbiter and at least one worker
    for pid in pids:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        assert cwd != PROJECT_ROOT and PROJECT_ROOT not in cwd.parents, (pid, cwd)
    assert any(Path(os.readlink(f"/proc/{pid}/cwd")) == src.resolve() for pid in pids)  # the worker: in the Bento
    # The server fixture emptied the Bento of bytecode before it started: what Python compiled since, it imported
    # from the Bento. A package is imported from one place only, so vtpose.* and service.* are the Bento's copies.
    for module in ("vtpose/__init__", "vtpose/serving/decoding", "service/service"):
        source = src / f"{module}.py"
        compiled = list(source.parent.glob(f"__pycache__/{source.stem}.*.pyc"))
        assert compiled, f"the server did not import {source}: it runs other code"
        code = marshal.loads(compiled[0].read_bytes()[16:])  # after the 16-byte pyc header
        assert Path(code.co_filename).resolve() == source.resolve(), (compiled[0], code.co_filename)


def test_a_tampered_ir_is_refused_at_start_up(bento: dict[str, Any], tmp_path: Path) -> None:
    """The IR's .bin changed in (a copy of) the model store: the worker refuses to load it, naming the file, and
    the server never reports ready."""
    import shutil

    home = tmp_path / "bentoml"
    shutil.copytree(bento["home"], home, symlinks=True)
    weights = home / "models" / Path(bento["model_tag"].replace(":", "/")) / "openvino" / "model.bin"
    with weights.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    log_path = tmp_path / "server.log"
    env = {**bento["env"], "BENTOML_HOME": str(home), "VTPOSE_BACKEND": "openvino"}
    proc, port = start_bento(bento["tag"], env, home, log_path, host=None)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Refusing to serve it" not in log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            with pytest.raises(httpx.HTTPError):  # never ready: no connection, or a non-200 answer
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).raise_for_status()
            time.sleep(1)
        assert "openvino/model.bin: sha256" in log_path.read_text(errors="replace")
    finally:
        stop(proc)
