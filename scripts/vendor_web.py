"""Vendor three.js and @pixiv/three-vrm into the studio page's web/vendor/ as plain ES modules (rerunnable).

    .venv/bin/python scripts/vendor_web.py

`npm pack`s the pinned versions (checking each tarball against its pinned sha512), copies the files the page
imports with their licences, and rewrites every bare `"three"` import to a relative path: the page's
Content-Security-Policy (`script-src 'self'`) blocks an inline import map, and there is no build step.
web/vendor/README.md lists what was copied, from which tarball. The new folder replaces the old one whole.

To move to other versions: change PACKAGES (version and the `npm view PKG@VERSION dist.integrity` it prints),
rerun, then run tests/test_studio3d_browser.py and the suite's Chromium 103 feature scan (OBS 30's browser source).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[1] / "vtpose" / "studio" / "live" / "web" / "vendor"
THREE_MODULE = "three/three.module.js"  # where three's entry point lands, relative to VENDOR_DIR


@dataclass(frozen=True)
class Package:
    """One npm package: what to copy from its tarball (path in the package -> path under VENDOR_DIR)."""

    name: str
    version: str
    integrity: str  # npm's dist.integrity (sha512) of the tarball
    files: dict[str, str]


PACKAGES = [
    Package(
        "three",
        "0.187.0",
        "sha512-Qiu7R+Cmh8CstZsY1uJOSWnVlfo7ZtNLV7mF8Jltk3LB3AtDu9cRZlcnRKkAk8Y4z6KKw35z7Y7Urd7jWY8etA==",
        {
            "LICENSE": "three/LICENSE",
            "build/three.module.js": THREE_MODULE,
            "build/three.core.js": "three/three.core.js",
            "examples/jsm/loaders/GLTFLoader.js": "three/addons/loaders/GLTFLoader.js",
            "examples/jsm/utils/BufferGeometryUtils.js": "three/addons/utils/BufferGeometryUtils.js",
            "examples/jsm/utils/SkeletonUtils.js": "three/addons/utils/SkeletonUtils.js",
        },
    ),
    Package(
        "@pixiv/three-vrm",
        "3.5.5",
        "sha512-RPXy7jYAXs704NIpZlosB0U2ENu21G9DrqGWdQgRe8dShaCo1ugpj+6BVPRCy91nt+MPMA96j5rbsSzEl0HlQA==",
        {
            "LICENSE": "three-vrm/LICENSE",
            "lib/three-vrm.module.min.js": "three-vrm/three-vrm.module.min.js",
        },
    ),
]

# An import or export statement's module specifier (statements start a line or follow a `;` or `}`, which skips
# examples in comments and strings): `import * as T from "three"`, `} from'three'`, `import "x"`.
SPECIFIER = re.compile(r"""((?:^|[;}])\s*(?:import|export)\b(?:[^;'"`]*?\bfrom)?\s*)(["'])([^"'\n]+)\2""", re.MULTILINE)


def _integrity(data: bytes) -> str:
    return "sha512-" + b64encode(hashlib.sha512(data).digest()).decode()


def _pack(package: Package, into: Path) -> Path:
    """`npm pack NAME@VERSION` into `into`; the tarball, checked against the pinned integrity."""
    spec = f"{package.name}@{package.version}"
    done = subprocess.run(["npm", "pack", "--silent", spec], cwd=into, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed: {done.stderr.strip()}")
    tarball = into / done.stdout.strip().splitlines()[-1]
    found = _integrity(tarball.read_bytes())
    if found != package.integrity:
        raise SystemExit(f"{spec}: tarball integrity {found} is not the pinned {package.integrity}; check PACKAGES")
    return tarball


def _relative(target: str, source: str) -> str:
    """The import path from vendored file `source` to `target` (both relative to VENDOR_DIR)."""
    depth = source.count("/")
    up = "../" * depth if depth else "./"
    return up + target


def _rewrite(text: str, dest: str) -> str:
    """`text` with its bare "three" imports pointing at the vendored module; any other bare import is an error."""
    module = _relative(THREE_MODULE, dest)
    bare: set[str] = set()

    def relative(match: re.Match[str]) -> str:
        lead, quote, specifier = match.groups()
        if specifier == "three":
            specifier = module
        elif not specifier.startswith((".", "/")):
            bare.add(specifier)
        return f"{lead}{quote}{specifier}{quote}"

    text = SPECIFIER.sub(relative, text)
    if bare:
        raise SystemExit(f"{dest}: imports {sorted(bare)}, which are not vendored; add them to PACKAGES")
    return text


def vendor(out: Path) -> list[str]:
    """Write the vendored files and README into `out`; returns the README's lines."""
    readme = [
        "# Vendored page libraries",
        "",
        "Written by `scripts/vendor_web.py` (rerun it to refresh; edit its PACKAGES to change versions).",
        'Bare `"three"` imports are rewritten to relative paths (the page\'s CSP blocks an import map);',
        "nothing else is changed.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            tarball = _pack(package, Path(tmp))
            sha1 = hashlib.sha1(tarball.read_bytes()).hexdigest()
            readme += [
                f"## {package.name} {package.version}",
                "",
                f"- tarball `{tarball.name}`, sha1 `{sha1}`, integrity `{package.integrity}`",
                "- files (package path -> vendor path):",
            ]
            with tarfile.open(tarball) as archive:
                for source, dest in package.files.items():
                    member = archive.extractfile(f"package/{source}")
                    if member is None:
                        raise SystemExit(f"{package.name}: no {source} in its tarball")
                    data = member.read()
                    if dest.endswith(".js"):
                        data = _rewrite(data.decode("utf-8"), dest).encode("utf-8")
                    path = out / dest
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    readme.append(f"  - `{source}` -> `{dest}`")
            readme.append("")
    (out / "README.md").write_text("\n".join(readme))
    return readme


def main() -> None:
    staging = Path(tempfile.mkdtemp(prefix="vendor-", dir=VENDOR_DIR.parent))
    try:
        vendor(staging)
        if VENDOR_DIR.exists():
            shutil.rmtree(VENDOR_DIR)
        staging.rename(VENDOR_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"vendored into {VENDOR_DIR}")


if __name__ == "__main__":
    main()
