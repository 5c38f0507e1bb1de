"""What the studio accepts as a VRM: a glTF binary with a VRM extension (1.0 or 0.x) and the bones the solver drives.

The check reads the file's header and JSON chunk only (the binary chunk, meshes and textures, is the browser's to
load), in memory: an upload is never written anywhere. Every refusal is one message naming the file, what is wrong
and what to send instead.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from vtpose.errors import VtposeError
from vtpose.studio.avatar3d.skeleton import DRIVEN_BONES, REQUIRED_BONES

GLB_MAGIC: Final = b"glTF"
GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
CHUNK_HEADER = struct.Struct("<I4s")  # chunk length, chunk type
JSON_CHUNK: Final = b"JSON"
# The largest VRM the studio takes (uploads relayed to the output views, files in the user's folder): VRoid Studio
# exports are often 10-30 MB. The studio's WebSocket takes messages a little larger than this
# (`vtpose.studio.live.protocol.MAX_WEBSOCKET_MESSAGE_BYTES`), so a file just over it is answered `too_large`.
MAX_VRM_BYTES: Final = 32 << 20
VERSIONS: Final = ("1.0", "0.x")
FIX = "export it from VRoid Studio, UniVRM or the VRM add-on for Blender as a .vrm file"


class VrmRejected(VtposeError):
    """A file the studio refuses as a VRM.

    Attributes:
        code: `too_large` (over the byte limit) or `bad_vrm` (anything else).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VrmInfo:
    """What the check learnt about an accepted VRM.

    Attributes:
        name: the file's name, as given.
        version: "1.0" (the VRMC_vrm extension) or "0.x" (the VRM extension).
        bones: humanoid bone names the file maps to nodes (VRM 1.0 names; 0.x uses the same ones).
        triangles: triangles over all its meshes' primitives (as drawn once each).
        title: the avatar's own name in its metadata, when it has one.
        bytes: the file's size.
    """

    name: str
    version: str
    bones: tuple[str, ...]
    triangles: int
    title: str | None
    bytes: int


def _json_chunk(data: bytes, name: str) -> dict[str, Any]:
    if len(data) < GLB_HEADER.size + CHUNK_HEADER.size:
        raise VrmRejected("bad_vrm", f"{name}: {len(data)} bytes is too short for a glTF binary file; {FIX}.")
    magic, version, length = GLB_HEADER.unpack_from(data)
    if magic != GLB_MAGIC:
        raise VrmRejected(
            "bad_vrm", f"{name}: not a glTF binary file (it does not start with 'glTF'); a .vrm is one: {FIX}."
        )
    if version != 2:
        raise VrmRejected("bad_vrm", f"{name}: glTF binary version {version}; VRM needs version 2: {FIX}.")
    if length != len(data):
        raise VrmRejected(
            "bad_vrm",
            f"{name}: its header says {length} bytes but it has {len(data)} (cut short?); send the whole file.",
        )
    chunk_length, chunk_type = CHUNK_HEADER.unpack_from(data, GLB_HEADER.size)
    start = GLB_HEADER.size + CHUNK_HEADER.size
    if chunk_type != JSON_CHUNK or start + chunk_length > len(data):
        raise VrmRejected("bad_vrm", f"{name}: the glTF binary's first chunk is not a whole JSON chunk; {FIX}.")
    try:
        document = json.loads(data[start : start + chunk_length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise VrmRejected("bad_vrm", f"{name}: the glTF JSON chunk does not parse ({error}); {FIX}.") from None
    if not isinstance(document, dict):
        raise VrmRejected("bad_vrm", f"{name}: the glTF JSON chunk is not an object; {FIX}.")
    return document


def _bones(document: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(version, bone name -> node index as written) from the VRM extension."""
    extensions = document.get("extensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    if isinstance(extensions.get("VRMC_vrm"), dict):
        humanoid = extensions["VRMC_vrm"].get("humanoid")
        bones = humanoid.get("humanBones") if isinstance(humanoid, dict) else None
        if not isinstance(bones, dict):
            raise VrmRejected("bad_vrm", f"{name}: a VRM 1.0 file without VRMC_vrm.humanoid.humanBones; {FIX}.")
        return "1.0", {k: v.get("node") if isinstance(v, dict) else None for k, v in bones.items()}
    if isinstance(extensions.get("VRM"), dict):
        humanoid = extensions["VRM"].get("humanoid")
        listed = humanoid.get("humanBones") if isinstance(humanoid, dict) else None
        if not isinstance(listed, list):
            raise VrmRejected("bad_vrm", f"{name}: a VRM 0.x file without VRM.humanoid.humanBones; {FIX}.")
        entries = [b for b in listed if isinstance(b, dict) and isinstance(b.get("bone"), str)]
        return "0.x", {b["bone"]: b.get("node") for b in entries}
    raise VrmRejected(
        "bad_vrm",
        f"{name}: a glTF file but not a VRM (no VRMC_vrm or VRM extension): a plain .glb has no humanoid to drive; "
        f"{FIX}.",
    )


def _triangles(document: dict[str, Any]) -> int:
    accessors: list[Any] = document["accessors"] if isinstance(document.get("accessors"), list) else []
    total = 0
    for mesh in document.get("meshes") or []:
        for primitive in (mesh.get("primitives") or []) if isinstance(mesh, dict) else []:
            if not isinstance(primitive, dict) or primitive.get("mode", 4) != 4:
                continue  # only triangle lists are counted; strips and fans are rare in VRMs
            index = primitive.get("indices")
            if index is None:
                attributes = primitive.get("attributes")
                index = attributes.get("POSITION") if isinstance(attributes, dict) else None
            if isinstance(index, int) and 0 <= index < len(accessors) and isinstance(accessors[index], dict):
                count = accessors[index].get("count", 0)
                total += count // 3 if isinstance(count, int) else 0
    return total


def _title(document: dict[str, Any], version: str) -> str | None:
    extensions = document.get("extensions") or {}
    meta = extensions.get("VRMC_vrm", {}).get("meta") if version == "1.0" else extensions.get("VRM", {}).get("meta")
    if not isinstance(meta, dict):
        return None
    title = meta.get("name") if version == "1.0" else meta.get("title")
    return title if isinstance(title, str) else None


def check_vrm(data: bytes, name: str, max_bytes: int = MAX_VRM_BYTES) -> VrmInfo:
    """Check a .vrm file's bytes the way the studio does before relaying or serving it.

    Args:
        data: the whole file.
        name: how messages name it (the file name).
        max_bytes: the size limit.

    Returns:
        What the file holds: version, bones, triangles.

    Raises:
        VrmRejected: `too_large`, or `bad_vrm` for not glTF binary, no VRM extension, or missing humanoid bones.
    """
    if len(data) > max_bytes:
        raise VrmRejected(
            "too_large",
            f"{name}: {len(data)} bytes; the studio takes VRM files up to {max_bytes} bytes ({max_bytes >> 20} MiB): "
            "reduce its textures (VRoid Studio's export settings) and export again.",
        )
    document = _json_chunk(data, name)
    version, bones = _bones(document, name)
    nodes: list[Any] = document["nodes"] if isinstance(document.get("nodes"), list) else []
    missing = [b for b in REQUIRED_BONES if b not in bones]
    if missing:
        raise VrmRejected(
            "bad_vrm",
            f"{name}: the humanoid lacks bone(s) {', '.join(missing)}; the studio drives "
            f"{', '.join(REQUIRED_BONES)}: map them in your VRM tool and export again.",
        )
    # Only the driven bones must point at nodes: some exporters leave an unused optional bone at -1.
    broken = [b for b in DRIVEN_BONES if b in bones and not (isinstance(bones[b], int) and 0 <= bones[b] < len(nodes))]
    if broken:
        raise VrmRejected(
            "bad_vrm", f"{name}: humanoid bone(s) {', '.join(broken)} point at no node of the file; export it again."
        )
    return VrmInfo(name, version, tuple(bones), _triangles(document), _title(document, version), len(data))
