"""The generated VRM avatars (reproducible, valid, rigged where the humanoid says) and the studio's VRM check."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from vtpose.errors import VtposeError
from vtpose.studio.avatar.rig import FOREARM, THIGH, UPPER_ARM
from vtpose.studio.avatar.spec import avatar_files, load_avatar
from vtpose.studio.avatar3d.generate import (
    EXPRESSIONS,
    SHADING_EXTRA,
    main,
    prepared_vrm_files,
    vrm_bytes,
    write_vrm,
)
from vtpose.studio.avatar3d.skeleton import GENERATED_BONES, METRES_PER_UNIT, PARENT, REQUIRED_BONES, rest_joints
from vtpose.studio.avatar3d.vrm_file import MAX_VRM_BYTES, VrmRejected, check_vrm

_DTYPES = {5126: np.float32, 5123: np.uint16, 5125: np.uint32, 5121: np.uint8}
_WIDTHS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    width = _WIDTHS[accessor.type]
    offset = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    return np.frombuffer(blob, _DTYPES[accessor.componentType], accessor.count * width, offset).reshape(-1, width)


def _glb(document: dict | bytes, binary: bytes = b"") -> bytes:
    """A glTF binary file around a JSON document or raw JSON chunk bytes (and an optional binary chunk)."""
    text = document if isinstance(document, bytes) else json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    if binary:
        chunks += struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def _document(data: bytes) -> dict:
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + length])


def test_checked_in_vrms_are_what_the_generator_writes(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    prepared = prepared_vrm_files()
    assert set(prepared) == set(avatar_files()), "every prepared YAML avatar has its VRM (run `make vrms`)"
    for name, path in prepared.items():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"{name}.vrm is stale: run `make vrms`"


@pytest.mark.parametrize("name", sorted(avatar_files()))
def test_generated_vrm_is_a_rigged_vrm_1_humanoid(name: str) -> None:
    data = prepared_vrm_files()[name].read_bytes()
    info = check_vrm(data, f"{name}.vrm")
    assert info.version == "1.0" and info.title == name and set(info.bones) == set(GENERATED_BONES)
    assert 2000 < info.triangles < 12000
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob()
    vrm = gltf.extensions["VRMC_vrm"]
    assert vrm["specVersion"] == "1.0" and vrm["meta"]["authors"] and vrm["meta"]["licenseUrl"]
    bones = {b: v["node"] for b, v in vrm["humanoid"]["humanBones"].items()}

    # Matte PBR for any glTF viewer, and the extra that has the studio's pages light it per vertex.
    assert gltf.materials
    for material in gltf.materials:
        pbr = material.pbrMetallicRoughness
        assert pbr.metallicFactor == 0 and pbr.roughnessFactor >= 0.5 and pbr.baseColorTexture is None
        assert material.extras == SHADING_EXTRA, material.name

    # Each bone node sits where the rest T-pose says, in metres, through its parents' translations.
    world: dict[str, np.ndarray] = {}
    for bone in GENERATED_BONES:
        node = gltf.nodes[bones[bone]]
        assert node.rotation is None and node.scale is None, "rest pose: translations only"
        parent = PARENT[bone]
        if parent is not None:
            assert bones[bone] in gltf.nodes[bones[parent]].children
        world[bone] = np.array(node.translation) + (world[parent] if parent else 0.0)
    rest = rest_joints()
    for bone in GENERATED_BONES:
        np.testing.assert_allclose(world[bone], rest[bone] * METRES_PER_UNIT, atol=1e-5)
    shoulders = np.linalg.norm(world["leftUpperArm"] - world["rightUpperArm"])
    # Adult proportions relative to the shoulder width (the scale the page fits a person to).
    assert np.linalg.norm(world["leftLowerArm"] - world["leftUpperArm"]) / shoulders == pytest.approx(UPPER_ARM)
    assert np.linalg.norm(world["leftHand"] - world["leftLowerArm"]) / shoulders == pytest.approx(FOREARM)
    assert np.linalg.norm(world["rightLowerLeg"] - world["rightUpperLeg"]) / shoulders == pytest.approx(THIGH)
    assert world["leftUpperArm"][0] > 0 and world["head"][1] > world["neck"][1] > world["hips"][1]

    # The skin's inverse bind matrices undo each joint's rest translation.
    (skin,) = gltf.skins
    ibm = _accessor(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4)
    for joint, matrix in zip(skin.joints, ibm, strict=True):
        bone = gltf.nodes[joint].name
        np.testing.assert_allclose(matrix[3, :3], -world[bone], atol=1e-5)

    # Every vertex is skinned with weights summing to 1; each bone's vertices lie around its segment.
    by_bone: dict[str, list[np.ndarray]] = {}
    for mesh in gltf.meshes:
        for primitive in mesh.primitives:
            positions = _accessor(gltf, blob, primitive.attributes.POSITION)
            weights = _accessor(gltf, blob, primitive.attributes.WEIGHTS_0)
            joints = _accessor(gltf, blob, primitive.attributes.JOINTS_0)
            np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
            main_joint = joints[np.arange(len(joints)), weights.argmax(axis=1)]
            for j in np.unique(main_joint):
                by_bone.setdefault(gltf.nodes[skin.joints[j]].name, []).append(positions[main_joint == j])
    upper_arm = np.concatenate(by_bone["leftUpperArm"])
    assert upper_arm[:, 0].min() < world["leftUpperArm"][0] + 0.05 < world["leftLowerArm"][0] < upper_arm[:, 0].max()
    shin = np.concatenate(by_bone["rightLowerLeg"])
    assert shin[:, 1].max() > world["rightLowerLeg"][1] - 0.05 and shin[:, 1].min() < world["rightFoot"][1] + 0.05
    head = np.concatenate(by_bone["head"])
    # Long hair may fall below the shoulders; the head itself sits on the neck, above them.
    assert np.median(head[:, 1]) > world["leftUpperArm"][1] + 0.4 * shoulders, "the head is on the neck"


@pytest.mark.parametrize("name", ["kitty", "robot"])
def test_generated_expressions_close_the_eyes_and_open_the_mouth(name: str) -> None:
    data = prepared_vrm_files()[name].read_bytes()
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob()
    preset = gltf.extensions["VRMC_vrm"]["expressions"]["preset"]
    assert set(preset) == set(EXPRESSIONS)
    moved: dict[str, np.ndarray] = {}
    for expression, record in preset.items():
        (bind,) = record["morphTargetBinds"]
        mesh = gltf.meshes[gltf.nodes[bind["node"]].mesh]
        shift = []
        for primitive in mesh.primitives:
            positions = _accessor(gltf, blob, primitive.attributes.POSITION)
            target = primitive.targets[bind["index"]]
            delta = _accessor(gltf, blob, target["POSITION"] if isinstance(target, dict) else target.POSITION)
            shift.append(np.column_stack([positions, delta]))
        moved[expression] = np.concatenate(shift)
    for expression in ("blink", "blinkLeft", "blinkRight"):
        rows = moved[expression]
        assert np.abs(rows[:, 4]).max() > 0.005, f"{expression} moves the eyes"
    left, right = moved["blinkLeft"], moved["blinkRight"]
    assert np.all(left[np.abs(left[:, 4]) > 1e-6, 0] > 0), "blinkLeft closes the avatar's left (+X) eye only"
    assert np.all(right[np.abs(right[:, 4]) > 1e-6, 0] < 0)
    mouth = moved["aa"]
    assert np.abs(mouth[:, 4]).max() > 0.005 and np.all(np.abs(moved["blink"][:, 4][np.abs(mouth[:, 4]) > 1e-6]) < 1e-9)


def test_detail_makes_the_heavy_benchmark_mesh(tmp_path: Path) -> None:
    light = check_vrm(vrm_bytes(load_avatar("kitty")), "kitty.vrm")
    heavy = check_vrm(write_vrm("kitty", tmp_path / "heavy.vrm", detail=9).read_bytes(), "heavy.vrm")
    assert 25_000 < heavy.triangles < 45_000 and heavy.triangles > 4 * light.triangles
    with pytest.raises(VtposeError, match="detail 0"):
        vrm_bytes(load_avatar("kitty"), detail=0)


def test_vrm_0x_is_accepted_with_its_bone_list() -> None:
    bones = [{"bone": b, "node": i} for i, b in enumerate(REQUIRED_BONES)]
    document = {
        "asset": {"version": "2.0"},
        "nodes": [{"name": b} for b in REQUIRED_BONES],
        "extensions": {"VRM": {"meta": {"title": "old"}, "humanoid": {"humanBones": bones}}},
    }
    info = check_vrm(_glb(document), "old.vrm")
    assert info.version == "0.x" and info.title == "old" and set(info.bones) == set(REQUIRED_BONES)


def _kitty_document() -> tuple[dict, bytes]:
    data = prepared_vrm_files()["kitty"].read_bytes()
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    return _document(data), gltf.binary_blob()


def test_check_vrm_refusals_name_the_file_and_the_fix() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    with pytest.raises(VrmRejected, match=r"photo\.vrm: not a glTF binary file .*export it") as caught:
        check_vrm(png, "photo.vrm")
    assert caught.value.code == "bad_vrm"

    document, binary = _kitty_document()
    plain = {k: v for k, v in document.items() if k not in ("extensions", "extensionsUsed")}
    with pytest.raises(VrmRejected, match=r"plain\.glb: a glTF file but not a VRM"):
        check_vrm(_glb(plain, binary), "plain.glb")

    del document["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["leftLowerArm"]
    del document["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["rightUpperLeg"]
    with pytest.raises(VrmRejected, match=r"lacks bone\(s\) leftLowerArm, rightUpperLeg"):
        check_vrm(_glb(document, binary), "armless.vrm")

    document, binary = _kitty_document()
    document["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]["head"] = {"node": 999}
    with pytest.raises(VrmRejected, match=r"bone\(s\) head point at no node"):
        check_vrm(_glb(document, binary), "broken.vrm")

    whole = prepared_vrm_files()["kitty"].read_bytes()
    with pytest.raises(VrmRejected, match=r"cut short"):
        check_vrm(whole[:-100], "cut.vrm")
    with pytest.raises(VrmRejected, match=r"does not parse"):
        check_vrm(_glb(b"{not json}"), "junk.vrm")
    with pytest.raises(VrmRejected, match="version 1"):
        check_vrm(struct.pack("<4sII", b"glTF", 1, 40) + bytes(28), "v1.vrm")

    with pytest.raises(VrmRejected, match=rf"big\.vrm: {MAX_VRM_BYTES + 1} bytes; .* up to {MAX_VRM_BYTES}") as caught:
        check_vrm(bytes(MAX_VRM_BYTES + 1), "big.vrm")
    assert caught.value.code == "too_large"
