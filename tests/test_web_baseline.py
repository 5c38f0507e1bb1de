"""Nothing the studio serves is newer than the OBS 30 browser source's engine (Chromium 103).

The scan (vtpose.testing.web_baseline) reads every JS, CSS and HTML file of the studio's web folder, the vendored
three.js and three-vrm included; snippets check that it finds what it must (with file and line) and only that.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from vtpose.studio.live.app import WEB_DIR
from vtpose.testing import web_baseline
from vtpose.testing.web_baseline import (
    BASELINE_CHROMIUM,
    KNOWN_HOMONYMS,
    newer_than_baseline,
    scan_css,
    scan_file,
    scan_html,
    scan_js,
    scan_tree,
    scanned_files,
)


def _features(findings: list[web_baseline.Finding]) -> list[tuple[str, int]]:
    return [(f.feature, f.line) for f in findings]


def test_every_file_the_studio_serves_runs_in_chromium_103() -> None:
    files = scanned_files(WEB_DIR)
    names = {p.relative_to(WEB_DIR).as_posix() for p in files}
    # The scan reads the pages, their modules and the stylesheet (and web/vendor/ once vendored).
    assert {"index.html", "output.html", "studio.js", "renderer.js", "expressions.js", "studio.css"} <= names
    vendored = [p for p in files if "vendor" in p.relative_to(WEB_DIR).parts]
    assert all(p.suffix in (".js", ".mjs", ".css", ".html") for p in vendored)
    found = scan_tree(WEB_DIR)
    assert not found, "newer than Chromium 103 (OBS 30's browser source):\n" + "\n".join(map(str, found))


def test_known_homonyms_are_still_exactly_what_the_vendored_files_hold() -> None:
    """Each accepted homonym (another object's method of a built-in's name) is counted in its file: a stale entry,
    or one more use than was read, fails here."""
    raw = Counter(
        (path.name, finding.feature)
        for path in scanned_files(WEB_DIR)
        for finding in scan_file(path)
        if finding.chromium > BASELINE_CHROMIUM
    )
    for (name, feature), count in KNOWN_HOMONYMS.items():
        if any(p.name == name for p in scanned_files(WEB_DIR)):
            assert raw[(name, feature)] == count, (name, feature, raw[(name, feature)])


def test_a_snippet_with_to_sorted_and_css_nesting_is_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "page.js").write_text("const a = [3, 1];\n\nexport const b = a.toSorted();\n")
    (tmp_path / "page.css").write_text(".card {\n  color: red;\n  & .title { color: blue; }\n}\n")
    found = scan_tree(tmp_path)
    assert [(f.file, f.line, f.feature, f.chromium) for f in found] == [
        ("page.css", 3, "CSS nesting", 112),
        ("page.js", 3, "Array.prototype.toSorted", 110),
    ]
    assert str(found[1]) == "page.js:3:20: Array.prototype.toSorted (needs Chromium 110)"
    assert web_baseline.main([str(tmp_path)]) == 1
    assert web_baseline.main([str(WEB_DIR)]) == 0


def test_strings_comments_templates_and_regexes_are_not_code() -> None:
    source = (
        "// a.toSorted() in a comment\n"
        "/* Object.groupBy(x) */\n"
        "const s = 'a.toSorted()' + \"structuredClone\";\n"
        "const t = `text .toReversed() ${n / 2} /v`;\n"
        "const r = /toSorted|\\(?i:x\\)/g;\n"
        "const half = width / 2 / v;\n"
    )
    assert scan_js(source, "a.js") == []


def test_js_features_newer_than_the_baseline_are_found() -> None:
    source = (
        "const g = Object.groupBy(items, (i) => i.kind);\n"  # 1
        "const { promise } = Promise.withResolvers();\n"  # 2
        "const u = a.union(b);\n"  # 3
        "const re = /[\\p{L}--\\p{Ll}]/v;\n"  # 4
        "import data from './d.json' with { type: 'json' };\n"  # 5
        "const m = /(?i:ab)c/;\n"  # 6
        "const h = new Float16Array(4);\n"  # 7
        "using handle = open();\n"  # 8
        "const w = arr.with(0, 1).findLast((x) => x);\n"  # 9
    )
    found = newer_than_baseline(scan_js(source, "a.js"))
    assert _features(found) == [
        ("Object.groupBy", 1),
        ("Promise.withResolvers", 2),
        ("Set.prototype.union", 3),
        ("RegExp /v flag (unicodeSets)", 4),
        ("import attributes (import ... with {type})", 5),
        ("RegExp modifiers (?i:...)", 6),
        ("Float16Array", 7),
        ("using declarations (explicit resource management)", 8),
        ("Array.prototype.with", 9),
    ]


def test_features_chromium_103_has_are_found_and_pass() -> None:
    source = (
        "const c = structuredClone(x);\n"
        "const last = list.at(-1) ?? list.findLast((v) => v);\n"
        "class A { static { A.ready = true; } #p = 1; has(o) { return #p in o; } }\n"
        "await Promise.resolve();\n"
        "const ok = Object.hasOwn(o, 'k');\n"
    )
    found = scan_js(source, "a.js")
    assert {f.feature for f in found} == {
        "structuredClone",
        "Array/String.prototype.at",
        "Array.prototype.findLast",
        "class static blocks",
        "top-level await",
        "Object.hasOwn",
    }
    assert newer_than_baseline(found) == []


def test_feature_detected_uses_pass() -> None:
    """three.js reads AbortSignal.any and Float16Array only behind a typeof check, and runs without them."""
    source = (
        "const s = typeof AbortSignal.any === 'function' ? AbortSignal.any([a, b]) : a;\n"
        "if (typeof Float16Array !== 'undefined' && array instanceof Float16Array) f();\n"
        "if (typeof structuredClone === 'function') { copy = structuredClone(x); }\n"
    )
    assert newer_than_baseline(scan_js(source, "a.js")) == []
    # The same use without its check is reported.
    assert _features(newer_than_baseline(scan_js("const s = AbortSignal.any([a, b]);", "a.js"))) == [
        ("AbortSignal.any", 1)
    ]


def test_css_features_newer_than_the_baseline_are_found() -> None:
    source = (
        "@layer base { p { margin: 0; } }\n"  # 1: @layer is 99, fine
        "form:has(input:invalid) { outline: 1px solid red; }\n"  # 2
        "@container card (min-width: 30em) { p { color: red; } }\n"  # 3
        ".a { color: color-mix(in srgb, red 50%, blue); }\n"  # 4
        ".b { text-wrap: balance; height: 100dvh; }\n"  # 5
        "@media (width >= 600px) { .c { color: red; } }\n"  # 6
        ".d { translate: 10px 0; }\n"  # 7
        ".e { .f { color: red; } }\n"  # 8
        "/* .g { & .h {} } :has() */\n"  # 9: a comment
        ".i::after { content: ':has(x) color-mix()'; }\n"  # 10: a string
    )
    found = newer_than_baseline(scan_css(source, "a.css"))
    assert _features(found) == [
        (":has()", 2),
        ("@container (container queries)", 3),
        ("color-mix()", 4),
        ("text-wrap", 5),
        ("small/large/dynamic viewport units", 5),
        ("media query range syntax (width >= ...)", 6),
        ("translate (individual transform)", 7),
        ("CSS nesting", 8),
    ]
    assert [f.feature for f in scan_css(source, "a.css") if f.line == 1] == ["@layer"]


def test_html_elements_attributes_and_inline_code_are_scanned() -> None:
    page = (
        "<!doctype html>\n"
        "<dialog open>hi</dialog>\n"  # 2: 37, fine
        "<div popover id=tip>tip</div>\n"  # 3
        "<style>\n.x:has(.y) { color: red; }\n</style>\n"  # 5
        "<script type=module>\nconst a = [].toSorted();\n</script>\n"  # 8
        '<p style="text-wrap: pretty">x</p>\n'  # 10
    )
    found = newer_than_baseline(scan_html(page, "a.html"))
    assert _features(found) == [
        ("popover", 3),
        (":has()", 5),
        ("Array.prototype.toSorted", 8),
        ("text-wrap", 10),
    ]


@pytest.mark.parametrize("bad", ["const = ;\n", "let x = {;\n"])
def test_js_the_grammar_cannot_parse_is_reported(bad: str) -> None:
    found = newer_than_baseline(scan_js(bad, "bad.js"))
    assert found and found[0].feature == "syntax the JavaScript grammar cannot parse" and found[0].line == 1
