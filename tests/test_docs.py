"""The documentation stays true to the tree: every relative link in the project's Markdown resolves (file and
#anchor, as GitHub renders them), and the README's layout lists exactly the library's folders and modules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from vtpose.paths import PROJECT_ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# The library's entries the layout lists, as `find vtpose -maxdepth 2` gives them (less packages' own files).
NOT_LISTED = {"__init__.py", "__pycache__"}


def markdown_files() -> list[Path]:
    """The project's own Markdown: git-tracked and untracked-but-not-ignored (data/ is ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(PROJECT_ROOT / name for name in listed if (PROJECT_ROOT / name).is_file())


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `[x](y)` inside a code block is not a link)."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lowercased, punctuation dropped, spaces to hyphens,
    repeats numbered -1, -2..."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(2).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path: Path) -> list[str]:
    """Each relative link of one Markdown file that does not resolve, with the reason."""
    broken = []
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            name = f"{path.relative_to(PROJECT_ROOT)}: ({target})"
            if not resolved.exists():
                broken.append(f"{name}: {file_part} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved):
                broken.append(f"{name}: no heading #{anchor} in {resolved.relative_to(PROJECT_ROOT)}")
    return broken


def test_every_relative_link_resolves() -> None:
    files = markdown_files()
    assert PROJECT_ROOT / "README.md" in files and PROJECT_ROOT / "docs" / "serving.md" in files
    broken = [problem for path in files for problem in broken_links(path)]
    assert not broken, "fix these links (or the headings they point at):\n" + "\n".join(broken)


def test_the_anchor_rule_matches_github(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Getting `data/`: DVC, or the rebuild\n## `make run-containers`\n## Tests\n## Tests\n")
    assert github_anchors(page) == {"getting-data-dvc-or-the-rebuild", "make-run-containers", "tests", "tests-1"}


def layout_entries() -> list[str]:
    """The library paths the README's layout tree lists (`vtpose/...`), from the names heading each line."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```", 2)[1]
    entries: list[str] = []
    parents = ["vtpose"]
    for line in tree.splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        name = line.strip().split(" ", 1)[0] if line.strip() else ""
        depth, odd = divmod(indent, 2)
        if depth not in (1, 2) or odd or not re.match(r"^[\w.]+/?$", name):
            continue  # vtpose/ itself, the folders beside it, or a description's continuation line
        del parents[depth:]
        entries.append("/".join([*parents, name.rstrip("/")]))
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return entries


def test_the_layout_lists_the_library() -> None:
    listed = layout_entries()
    actual = {
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "vtpose").glob("*")
        if path.name not in NOT_LISTED
    } | {
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "vtpose").glob("*/*")
        if path.name not in NOT_LISTED
    }
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({e for e in listed if listed.count(e) > 1})}"
    missing, gone = sorted(actual - set(listed)), sorted(set(listed) - actual)
    assert not missing and not gone, (
        f"README.md's Layout is out of date: add {missing}, remove {gone} (one line each: what lives there)"
    )
