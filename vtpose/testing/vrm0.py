"""A small VRM 0.x file written from scratch, for the browser tests (the prepared avatars are VRM 1.0).

A box-limbed humanoid on the generated avatars' rest skeleton, in UniVRM 0.x's conventions: it faces -Z and its
left hand points along -X (three-vrm's `VRMUtils.rotateVRM0` turns it to face +Z), every humanoid bone a node with
no rotation, one textured material (so the page's image loading runs under its Content-Security-Policy) and
`Blink` / `A` blend shapes on the head.
Variants for the refusal tests: humanoid bones left out of the mapping, or plain glTF without the VRM extension.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from vtpose.studio.avatar3d.skeleton import GENERATED_BONES, METRES_PER_UNIT, PARENT, rest_joints

GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
_FLOAT, _USHORT = 5126, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _bones() -> dict[str, tuple[str | None, tuple[float, float, float]]]:
    """Bone -> (parent, offset from the parent's joint in metres): the generated avatars' rest skeleton (so the
    fidelity bound applies to this file too), mirrored in x as UniVRM 0.x writes it (left side at -X)."""
    joints = rest_joints()
    bones: dict[str, tuple[str | None, tuple[float, float, float]]] = {}
    for name in GENERATED_BONES:
        parent = PARENT[name]
        offset = (joints[name] - (joints[parent] if parent else 0.0)) * METRES_PER_UNIT * np.array([-1.0, 1.0, 1.0])
        bones[name] = (parent, (round(float(offset[0]), 4), round(float(offset[1]), 4), round(float(offset[2]), 4)))
    return bones


BONES = _bones()
# Each bone's box reaches to this child's joint (end bones get a short box of their own).
_SEGMENT_TO = {parent: name for name, (parent, _) in BONES.items() if parent} | {"chest": "neck", "hips": "spine"}
_THICKNESS = 0.07
_META = {
    "title": "box person (VRM 0.x test file)",
    "version": "1",
    "author": "vtpose tests",
    "allowedUserName": "Everyone",
    "violentUssageName": "Disallow",
    "sexualUssageName": "Disallow",
    "commercialUssageName": "Allow",
    "licenseName": "CC0",
}
_MATERIAL = {"name": "skin", "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "metallicFactor": 0}}
_HEAD_SIZE = 0.22


def _box(center: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An axis-aligned box: positions, normals (24, 3) float32, uvs (24, 2) float32, indices (36,) uint16."""
    positions: list[np.ndarray] = []
    normals: list[np.ndarray] = []
    uvs: list[tuple[float, float]] = []
    indices: list[int] = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.zeros(3)
            normal[axis] = sign
            u, v = [a for a in range(3) if a != axis]
            base = len(positions)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                corner = normal.copy()
                corner[u], corner[v] = du, dv
                positions.append(center + corner * size / 2)
                normals.append(normal)
                uvs.append(((du + 1) / 2, (dv + 1) / 2))
            quad = [0, 1, 2, 0, 2, 3] if sign > 0 else [0, 2, 1, 0, 3, 2]
            indices += [base + i for i in quad]
    return (np.array(positions, np.float32), np.array(normals, np.float32), np.array(uvs, np.float32),
            np.array(indices, np.uint16))  # fmt: skip


def _png(rgb: tuple[int, int, int]) -> bytes:
    """A 2x2 PNG of one colour (the texture)."""
    raw = b"".join(b"\0" + bytes(rgb) * 2 for _ in range(2))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.data += data
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int) -> int:
        component = _USHORT if array.dtype == np.uint16 else _FLOAT
        accessor: dict[str, Any] = {
            "bufferView": self.view(array.tobytes(), target),
            "componentType": component,
            "count": len(array),
            "type": kind,
        }
        if kind == "VEC3":
            accessor |= {"min": array.min(axis=0).tolist(), "max": array.max(axis=0).tolist()}
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def vrm0_json(omit: tuple[str, ...] = (), vrm: bool = True) -> tuple[dict[str, Any], bytes]:
    """The glTF JSON and binary chunk of the humanoid, its humanoid mapping without the bones in `omit` (the nodes
    stay), or without the VRM extension at all (`vrm=False`)."""
    buffer = _Buffer()
    names = list(BONES)
    nodes: list[dict[str, Any]] = []
    meshes: list[dict[str, Any]] = []
    for name in names:
        parent, offset = BONES[name]
        node: dict[str, Any] = {"name": name, "translation": list(offset)}
        if name in _SEGMENT_TO or name == "head" or name.endswith(("Hand", "Foot")):
            child = _SEGMENT_TO.get(name)
            reach = np.array(BONES[child][1] if child else (0.0, 0.0, 0.0))
            if name == "head":
                center, size = np.array([0.0, _HEAD_SIZE / 2, 0.0]), np.full(3, _HEAD_SIZE)
            elif child is None:  # a hand or a foot
                center, size = np.zeros(3), np.full(3, 1.4 * _THICKNESS)
            else:
                center = reach / 2
                size = np.maximum(np.abs(reach), _THICKNESS)
            positions, normals, uvs, indices = _box(center, size)
            primitive: dict[str, Any] = {
                "attributes": {
                    "POSITION": buffer.accessor(positions, "VEC3", _ARRAY_BUFFER),
                    "NORMAL": buffer.accessor(normals, "VEC3", _ARRAY_BUFFER),
                    "TEXCOORD_0": buffer.accessor(uvs, "VEC2", _ARRAY_BUFFER),
                },
                "indices": buffer.accessor(indices, "SCALAR", _ELEMENT_ARRAY_BUFFER),
                "material": 0,
            }
            if name == "head":  # Blink squashes the face's front toward the middle; A pushes its bottom down
                front = (positions[:, 2] < 0).astype(np.float32)[:, None]
                blink = np.zeros_like(positions)
                blink[:, 1] = -(positions[:, 1] - _HEAD_SIZE / 2) * 0.3 * front[:, 0]
                mouth = np.zeros_like(positions)
                mouth[:, 1] = -0.05 * (positions[:, 1] < _HEAD_SIZE / 2) * front[:, 0]
                primitive["targets"] = [
                    {"POSITION": buffer.accessor(blink, "VEC3", _ARRAY_BUFFER)},
                    {"POSITION": buffer.accessor(mouth, "VEC3", _ARRAY_BUFFER)},
                ]
            meshes.append({"name": f"{name}_box", "primitives": [primitive]})
            node["mesh"] = len(meshes) - 1
        nodes.append(node)
    for index, name in enumerate(names):
        parent = BONES[name][0]
        if parent is not None:
            nodes[names.index(parent)].setdefault("children", []).append(index)
    head_mesh = nodes[names.index("head")]["mesh"]
    texture_view = buffer.view(_png((240, 180, 90)))
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "vtpose.testing.vrm0"},
        "scene": 0,
        "scenes": [{"nodes": [names.index("hips")]}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": [_MATERIAL],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9728, "minFilter": 9728}],
        "images": [{"name": "skin", "bufferView": texture_view, "mimeType": "image/png"}],
        "accessors": buffer.accessors,
        "bufferViews": buffer.views,
        "buffers": [{"byteLength": 0}],
    }
    if vrm:
        extension: dict[str, Any] = {
            "exporterVersion": "vtpose.testing.vrm0",
            "specVersion": "0.0",
            "meta": _META,
            "humanoid": {
                "humanBones": [
                    {"bone": n, "node": i, "useDefaultValues": True} for i, n in enumerate(names) if n not in omit
                ]
            },
            "blendShapeMaster": {
                "blendShapeGroups": [
                    {"name": "Blink", "presetName": "blink", "binds": [{"mesh": head_mesh, "index": 0, "weight": 100}]},
                    {"name": "A", "presetName": "a", "binds": [{"mesh": head_mesh, "index": 1, "weight": 100}]},
                ]
            },
            "materialProperties": [],
        }
        gltf["extensionsUsed"] = ["VRM"]
        gltf["extensions"] = {"VRM": extension}
    while len(buffer.data) % 4:
        buffer.data.append(0)
    gltf["buffers"][0]["byteLength"] = len(buffer.data)
    return gltf, bytes(buffer.data)


def glb(gltf: dict[str, Any], binary: bytes) -> bytes:
    """A glTF binary container of `gltf` and its binary chunk."""
    text = json.dumps(gltf, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), _JSON_CHUNK) + text + struct.pack("<II", len(binary), _BIN_CHUNK) + binary
    return GLB_MAGIC + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def write_vrm0(path: Path, omit: tuple[str, ...] = (), vrm: bool = True) -> Path:
    """Write the VRM 0.x humanoid (or a variant, see `vrm0_json`) to `path`; returns `path`."""
    path.write_bytes(glb(*vrm0_json(omit, vrm)))
    return path
