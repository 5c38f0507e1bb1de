"""Nothing newer than the OBS browser source's engine: a feature scan of the studio's served JS, CSS and HTML.

OBS 30's browser source is CEF with Chromium 103 (OBS 31: 127). A page using one JS method that engine lacks is a
blank output view in OBS and nothing in the log (a browser-source tool's users found their blank page came from a
missing `structuredClone`), so the suite scans every file the studio serves, vendored libraries included, for the
language and API features in FEATURES that shipped after BASELINE_CHROMIUM.

JS is parsed by tree-sitter's JavaScript grammar (a real parser: nothing in strings, comments or template text is
mistaken for code, and a regex literal is told from a division); CSS by tinycss2 (the CSS Syntax Level 3 parser,
nested blocks included); HTML by the standard library's parser, its `<style>` and `<script>` contents scanned as
CSS and JS. Versions are Chromium's desktop release that shipped each feature unflagged, from MDN's
browser-compat-data and caniuse. A scan finds the features in the table only: what it cannot find is what the
table lacks. Static analysis has no types, so a method name is found on any object: KNOWN_HOMONYMS lists the uses
in pinned vendored files that were read and found to be another library's own method of that name.

`python -m vtpose.testing.web_baseline PATH...` scans files or folders (a vendored package before it is vendored)
and exits 1 when it finds anything newer than the baseline.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import tinycss2
import tree_sitter_javascript
from tree_sitter import Language, Node, Parser

BASELINE_CHROMIUM = 103  # CEF in OBS 30's browser source
NOT_SHIPPED = 10_000  # a feature no Chromium has shipped (decorators): always newer than the baseline
SCANNED_SUFFIXES = (".js", ".mjs", ".css", ".html")


@dataclass(frozen=True)
class Finding:
    """One use of a feature: where (file, 1-based line and column) and what (the feature, the Chromium that has it)."""

    file: str
    line: int
    column: int
    feature: str
    chromium: int

    def __str__(self) -> str:
        shipped = "no Chromium yet" if self.chromium >= NOT_SHIPPED else f"Chromium {self.chromium}"
        return f"{self.file}:{self.line}:{self.column}: {self.feature} (needs {shipped})"


# --- JS: the feature table -----------------------------------------------------------------------------------------
# Methods and properties found by name after a `.` (prototype members: the receiver's type is unknown).
JS_MEMBERS: dict[str, tuple[str, int]] = {
    "at": ("Array/String.prototype.at", 92),
    "findLast": ("Array.prototype.findLast", 97),
    "findLastIndex": ("Array.prototype.findLastIndex", 97),
    "toSorted": ("Array.prototype.toSorted", 110),
    "toReversed": ("Array.prototype.toReversed", 110),
    "toSpliced": ("Array.prototype.toSpliced", 110),
    "with": ("Array.prototype.with", 110),
    "isWellFormed": ("String.prototype.isWellFormed", 111),
    "toWellFormed": ("String.prototype.toWellFormed", 111),
    "maxByteLength": ("resizable ArrayBuffer (maxByteLength)", 111),
    "transferToFixedLength": ("ArrayBuffer.prototype.transferToFixedLength", 114),
    "detached": ("ArrayBuffer.prototype.detached", 114),
    "union": ("Set.prototype.union", 122),
    "intersection": ("Set.prototype.intersection", 122),
    "difference": ("Set.prototype.difference", 122),
    "symmetricDifference": ("Set.prototype.symmetricDifference", 122),
    "isSubsetOf": ("Set.prototype.isSubsetOf", 122),
    "isSupersetOf": ("Set.prototype.isSupersetOf", 122),
    "isDisjointFrom": ("Set.prototype.isDisjointFrom", 122),
    "startViewTransition": ("Document.prototype.startViewTransition", 111),
    "showPopover": ("HTMLElement.prototype.showPopover", 114),
    "hidePopover": ("HTMLElement.prototype.hidePopover", 114),
    "togglePopover": ("HTMLElement.prototype.togglePopover", 114),
    "checkVisibility": ("Element.prototype.checkVisibility", 105),
    "roundRect": ("CanvasRenderingContext2D.prototype.roundRect", 99),
}
# Static members, found as `Object.property`.
JS_STATICS: dict[tuple[str, str], tuple[str, int]] = {
    ("Object", "hasOwn"): ("Object.hasOwn", 93),
    ("Object", "groupBy"): ("Object.groupBy", 117),
    ("Map", "groupBy"): ("Map.groupBy", 117),
    ("Promise", "withResolvers"): ("Promise.withResolvers", 119),
    ("Promise", "try"): ("Promise.try", 128),
    ("Array", "fromAsync"): ("Array.fromAsync", 121),
    ("Iterator", "from"): ("Iterator.from", 122),
    ("URL", "canParse"): ("URL.canParse", 120),
    ("URL", "parse"): ("URL.parse", 126),
    ("AbortSignal", "timeout"): ("AbortSignal.timeout", 103),
    ("AbortSignal", "any"): ("AbortSignal.any", 116),
    ("Response", "json"): ("Response.json", 105),
    ("RegExp", "escape"): ("RegExp.escape", 136),
    ("Error", "isError"): ("Error.isError", 134),
    ("Math", "f16round"): ("Math.f16round", 135),
    ("Atomics", "pause"): ("Atomics.pause", 133),
    ("Intl", "DurationFormat"): ("Intl.DurationFormat", 129),
    ("Symbol", "dispose"): ("Symbol.dispose", 134),
    ("Symbol", "asyncDispose"): ("Symbol.asyncDispose", 134),
    ("scheduler", "yield"): ("Scheduler.prototype.yield", 129),
    ("navigator", "gpu"): ("Navigator.prototype.gpu", 113),
    ("import.meta", "resolve"): ("import.meta.resolve", 105),
}
# Global names, found as identifiers read (not declared, not a property).
JS_GLOBALS: dict[str, tuple[str, int]] = {
    "structuredClone": ("structuredClone", 98),
    "Float16Array": ("Float16Array", 135),
    "DisposableStack": ("DisposableStack", 134),
    "AsyncDisposableStack": ("AsyncDisposableStack", 134),
    "SuppressedError": ("SuppressedError", 134),
    "CloseWatcher": ("CloseWatcher", 120),
    "Temporal": ("Temporal", NOT_SHIPPED),
}
# Syntax, by tree-sitter node type.
JS_SYNTAX: dict[str, tuple[str, int]] = {
    "hash_bang_line": ("hashbang", 74),
    "class_static_block": ("class static blocks", 94),
    "using_declaration": ("using declarations (explicit resource management)", 134),
    "decorator": ("decorators", NOT_SHIPPED),
}
JS_IMPORT_ATTRIBUTES = ("import attributes (import ... with {type})", 123)
JS_IMPORT_ASSERTIONS = ("import assertions (import ... assert {type})", 91)
JS_TOP_LEVEL_AWAIT = ("top-level await", 89)
JS_REGEX_V_FLAG = ("RegExp /v flag (unicodeSets)", 112)
JS_REGEX_D_FLAG = ("RegExp /d flag (hasIndices)", 90)
JS_REGEX_MODIFIERS = ("RegExp modifiers (?i:...)", 125)
JS_REGEX_DUPLICATE_NAMES = ("RegExp duplicate named groups", 125)
JS_UNPARSED = ("syntax the JavaScript grammar cannot parse", NOT_SHIPPED)

# --- CSS: the feature table ----------------------------------------------------------------------------------------
CSS_NESTING = ("CSS nesting", 112)
CSS_AT_RULES: dict[str, tuple[str, int]] = {
    "layer": ("@layer", 99),
    "container": ("@container (container queries)", 105),
    "starting-style": ("@starting-style", 117),
    "scope": ("@scope", 118),
    "position-try": ("@position-try", 125),
    "view-transition": ("@view-transition", 126),
}
CSS_PSEUDO_CLASSES: dict[str, tuple[str, int]] = {
    "has": (":has()", 105),
    "modal": (":modal", 105),
    "popover-open": (":popover-open", 114),
    "user-valid": (":user-valid", 119),
    "user-invalid": (":user-invalid", 119),
    "dir": (":dir()", 120),
    "state": (":state()", 125),
    "open": (":open", 133),
}
CSS_NTH_OF = (":nth-child(An+B of S)", 111)
CSS_PROPERTIES: dict[str, tuple[str, int]] = {
    "accent-color": ("accent-color", 93),
    "translate": ("translate (individual transform)", 104),
    "rotate": ("rotate (individual transform)", 104),
    "scale": ("scale (individual transform)", 104),
    "container": ("container", 105),
    "container-type": ("container-type", 105),
    "container-name": ("container-name", 105),
    "initial-letter": ("initial-letter", 110),
    "view-transition-name": ("view-transition-name", 111),
    "text-wrap": ("text-wrap", 114),
    "white-space-collapse": ("white-space-collapse", 114),
    "animation-timeline": ("animation-timeline (scroll-driven)", 115),
    "scroll-timeline": ("scroll-timeline", 115),
    "view-timeline": ("view-timeline", 115),
    "animation-range": ("animation-range", 115),
    "transition-behavior": ("transition-behavior", 117),
    "overlay": ("overlay", 117),
    "scrollbar-color": ("scrollbar-color", 121),
    "scrollbar-width": ("scrollbar-width", 121),
    "field-sizing": ("field-sizing", 123),
    "text-spacing-trim": ("text-spacing-trim", 123),
    "anchor-name": ("anchor-name", 125),
    "position-anchor": ("position-anchor", 125),
    "position-area": ("position-area", 129),
    "interpolate-size": ("interpolate-size", 129),
}
CSS_FUNCTIONS: dict[str, tuple[str, int]] = {
    "hwb": ("hwb()", 101),
    "color-mix": ("color-mix()", 111),
    "color": ("color()", 111),
    "lab": ("lab()", 111),
    "lch": ("lch()", 111),
    "oklab": ("oklab()", 111),
    "oklch": ("oklch()", 111),
    "sin": ("CSS trigonometric functions", 111),
    "cos": ("CSS trigonometric functions", 111),
    "tan": ("CSS trigonometric functions", 111),
    "asin": ("CSS trigonometric functions", 111),
    "acos": ("CSS trigonometric functions", 111),
    "atan": ("CSS trigonometric functions", 111),
    "atan2": ("CSS trigonometric functions", 111),
    "pow": ("CSS exponential functions", 120),
    "sqrt": ("CSS exponential functions", 120),
    "hypot": ("CSS exponential functions", 120),
    "log": ("CSS exponential functions", 120),
    "exp": ("CSS exponential functions", 120),
    "linear": ("linear() easing", 113),
    "image-set": ("image-set() (unprefixed)", 113),
    "light-dark": ("light-dark()", 123),
    "round": ("round()", 125),
    "mod": ("mod()", 125),
    "rem": ("rem()", 125),
    "anchor": ("anchor()", 125),
    "anchor-size": ("anchor-size()", 125),
    "calc-size": ("calc-size()", 129),
    "abs": ("abs()", 138),
    "sign": ("sign()", 138),
}
CSS_UNITS: dict[str, tuple[str, int]] = {
    **{u: ("container query units (cq*)", 105) for u in ("cqw", "cqh", "cqi", "cqb", "cqmin", "cqmax")},
    **{
        u: ("small/large/dynamic viewport units", 108)
        for prefix in ("s", "l", "d", "")
        for u in (f"{prefix}vh", f"{prefix}vw", f"{prefix}vi", f"{prefix}vb", f"{prefix}vmin", f"{prefix}vmax")
        if u not in ("vh", "vw", "vmin", "vmax")
    },
    "ic": ("ic unit", 106),
    "lh": ("lh unit", 109),
    "rlh": ("rlh unit", 111),
    **{u: ("root font units (rex, rch, ric, rcap)", 111) for u in ("rex", "rch", "ric", "rcap")},
    "cap": ("cap unit", 118),
}
CSS_MEDIA_RANGE = ("media query range syntax (width >= ...)", 104)
CSS_MEDIA_FEATURES: dict[str, tuple[str, int]] = {
    "update": ("@media (update)", 113),
    "prefers-reduced-transparency": ("@media (prefers-reduced-transparency)", 118),
    "scripting": ("@media (scripting)", 120),
}

# --- HTML: the feature table ---------------------------------------------------------------------------------------
HTML_ELEMENTS: dict[str, tuple[str, int]] = {
    "dialog": ("<dialog>", 37),
    "search": ("<search>", 118),
    "selectedcontent": ("<selectedcontent>", 135),
}
HTML_ATTRIBUTES: dict[str, tuple[str, int]] = {
    "inert": ("inert", 102),
    "popover": ("popover", 114),
    "popovertarget": ("popovertarget", 114),
    "popovertargetaction": ("popovertargetaction", 114),
    "shadowrootmode": ("declarative shadow DOM (shadowrootmode)", 111),
    "blocking": ("blocking=render", 105),
    "closedby": ("closedby", 134),
    "commandfor": ("commandfor (invoker commands)", 135),
}
HTML_DETAILS_NAME = ("<details name> (exclusive accordion)", 120)

# Uses in pinned vendored files read and found to be another object's own method of the same name, not the
# built-in the table means: (file name, feature) -> how many. A count, so one more use fails the scan.
KNOWN_HOMONYMS: dict[tuple[str, str], int] = {
    # three 0.187.0: `this.union(box)` and `this.boundingBox.union(box)` are Box3.prototype.union.
    ("three.core.js", "Set.prototype.union"): 5,
}


# --- JS ------------------------------------------------------------------------------------------------------------
_JS_PARSER = Parser(Language(tree_sitter_javascript.language()))
_DECLARING_PARENTS = {"variable_declarator", "function_declaration", "class_declaration", "formal_parameters"}


def _walk(node: Node) -> Iterator[Node]:
    cursor = node.walk()
    while True:
        assert cursor.node is not None
        yield cursor.node
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _inside_function(node: Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.type in ("function_declaration", "function_expression", "arrow_function", "method_definition",
                           "generator_function_declaration", "generator_function", "class_static_block"):  # fmt: skip
            return True
        parent = parent.parent
    return False


def _regex_findings(pattern: str) -> list[tuple[str, int]]:
    """Features of a regex pattern's own syntax: modifiers `(?i:...)` and a group name used twice."""
    found = []
    names: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            names.append(pattern[i + 3 : pattern.find(">", i)])
        elif re.match(r"\(\?[ims]*(-[ims]+)?:", pattern[i:]) and pattern[i + 2] != ":":
            found.append(JS_REGEX_MODIFIERS)
        i += 1
    if len(names) != len(set(names)):
        found.append(JS_REGEX_DUPLICATE_NAMES)
    return found


_GUARDS = {"ternary_expression": "condition", "if_statement": "condition", "binary_expression": "left"}


def _feature_detected(node: Node) -> bool:
    """Whether `node` (a global or member read) is a feature check or used only where one passed: the operand of
    `typeof`, or inside `typeof X ... ? X : fallback`, `if (typeof X ...) X`, `typeof X ... && X` (three.js reads
    `AbortSignal.any` and `Float16Array` so, and runs without them)."""
    parent = node.parent
    if parent is not None and parent.type == "unary_expression" and parent.children[0].type == "typeof":
        return True
    text = node.text
    child, ancestor = node, parent
    while ancestor is not None:
        field = _GUARDS.get(ancestor.type)
        if ancestor.type == "binary_expression" and ancestor.child_by_field_name("operator") is not None:
            operator = ancestor.child_by_field_name("operator")
            field = "left" if operator is not None and operator.type == "&&" else None
        guard = ancestor.child_by_field_name(field) if field else None
        if guard is not None and guard != child:
            for inner in _walk(guard):
                if inner.type == "unary_expression" and inner.children[0].type == "typeof":
                    argument = inner.child_by_field_name("argument")
                    if argument is not None and argument.text == text:
                        return True
        child, ancestor = ancestor, ancestor.parent
    return False


def _js_node_features(node: Node) -> list[tuple[str, int]]:
    kind = node.type
    if kind in JS_SYNTAX:
        return [JS_SYNTAX[kind]]
    if kind == "ERROR" or node.is_missing:
        return [JS_UNPARSED]
    if kind == "member_expression":
        obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
        if obj is None or prop is None or prop.text is None or obj.text is None:
            return []
        name = prop.text.decode()
        static = JS_STATICS.get((obj.text.decode(), name))
        if static:
            return [] if _feature_detected(node) else [static]
        if prop.type == "property_identifier" and name in JS_MEMBERS:
            return [JS_MEMBERS[name]]
        return []
    if kind == "pair":  # {maxByteLength: n}: the option that makes an ArrayBuffer resizable
        key = node.child_by_field_name("key")
        if key is not None and key.text == b"maxByteLength":
            return [JS_MEMBERS["maxByteLength"]]
        return []
    if kind == "identifier" and node.text is not None:
        name = node.text.decode()
        declared = node.parent is not None and node.parent.type in _DECLARING_PARENTS
        if name in JS_GLOBALS and not declared and not _feature_detected(node):
            return [JS_GLOBALS[name]]
        return []
    if kind == "import_attribute":
        keyword = node.children[0].type if node.children else ""
        return [JS_IMPORT_ASSERTIONS if keyword == "assert" else JS_IMPORT_ATTRIBUTES]
    if kind == "await_expression" and not _inside_function(node):
        return [JS_TOP_LEVEL_AWAIT]
    if kind == "regex":
        pattern = node.child_by_field_name("pattern")
        flags = node.child_by_field_name("flags")
        flag_text = flags.text.decode() if flags is not None and flags.text is not None else ""
        found = [JS_REGEX_V_FLAG] if "v" in flag_text else []
        found += [JS_REGEX_D_FLAG] if "d" in flag_text else []
        if pattern is not None and pattern.text is not None:
            found += _regex_findings(pattern.text.decode())
        return found
    return []


def scan_js(source: str, file: str, first_line: int = 1) -> list[Finding]:
    """Every use in `source` (a script or module) of a JS feature in the table; `first_line` offsets the lines (a
    `<script>` inside an HTML file)."""
    tree = _JS_PARSER.parse(source.encode())
    found = []
    for node in _walk(tree.root_node):
        for feature, chromium in _js_node_features(node):
            where = node.child_by_field_name("property") if node.type == "member_expression" else node
            row, col = (where or node).start_point
            # tree-sitter counts columns in bytes; lines are what a reader looks for.
            found.append(Finding(file, row + first_line, col + 1, feature, chromium))
    return found


# --- CSS -----------------------------------------------------------------------------------------------------------
def _css_selector_features(tokens: list[tinycss2.ast.Node]) -> Iterator[tuple[tinycss2.ast.Node, tuple[str, int]]]:
    previous: tinycss2.ast.Node | None = None
    for token in tokens:
        colon = isinstance(previous, tinycss2.ast.LiteralToken) and previous.value == ":"
        if colon and isinstance(token, tinycss2.ast.FunctionBlock | tinycss2.ast.IdentToken):
            name = token.lower_name if isinstance(token, tinycss2.ast.FunctionBlock) else token.lower_value
            if name in CSS_PSEUDO_CLASSES:
                yield token, CSS_PSEUDO_CLASSES[name]
            nth = name in ("nth-child", "nth-last-child") and isinstance(token, tinycss2.ast.FunctionBlock)
            if nth and any(isinstance(t, tinycss2.ast.IdentToken) and t.lower_value == "of" for t in token.arguments):
                yield token, CSS_NTH_OF
        if isinstance(token, tinycss2.ast.FunctionBlock):
            yield from _css_selector_features(token.arguments)
        previous = token


def _css_value_features(tokens: Iterable[tinycss2.ast.Node]) -> Iterator[tuple[tinycss2.ast.Node, tuple[str, int]]]:
    for token in tokens:
        if isinstance(token, tinycss2.ast.FunctionBlock):
            if token.lower_name in CSS_FUNCTIONS:
                yield token, CSS_FUNCTIONS[token.lower_name]
            yield from _css_value_features(token.arguments)
        elif isinstance(token, tinycss2.ast.DimensionToken) and token.lower_unit in CSS_UNITS:
            yield token, CSS_UNITS[token.lower_unit]
        elif isinstance(token, tinycss2.ast.ParenthesesBlock | tinycss2.ast.SquareBracketsBlock):
            yield from _css_value_features(token.content)


def _css_media_features(tokens: Iterable[tinycss2.ast.Node]) -> Iterator[tuple[tinycss2.ast.Node, tuple[str, int]]]:
    for token in tokens:
        if not isinstance(token, tinycss2.ast.ParenthesesBlock):
            continue
        inner = [t for t in token.content if not isinstance(t, tinycss2.ast.WhitespaceToken)]
        if any(isinstance(t, tinycss2.ast.LiteralToken) and t.value in ("<", ">", "<=", ">=", "=") for t in inner):
            yield token, CSS_MEDIA_RANGE
        if inner and isinstance(inner[0], tinycss2.ast.IdentToken) and inner[0].lower_value in CSS_MEDIA_FEATURES:
            yield token, CSS_MEDIA_FEATURES[inner[0].lower_value]
        yield from _css_media_features(token.content)


def _css_block_features(
    content: list[tinycss2.ast.Node], in_style_rule: bool
) -> Iterator[tuple[tinycss2.ast.Node, tuple[str, int]]]:
    """Features of a block's contents: declarations, and rules nested in it (CSS nesting inside a style rule)."""
    for item in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if isinstance(item, tinycss2.ast.Declaration):
            if item.lower_name in CSS_PROPERTIES:
                yield item, CSS_PROPERTIES[item.lower_name]
            yield from _css_value_features(item.value)
        elif isinstance(item, tinycss2.ast.QualifiedRule):
            if in_style_rule:
                yield item, CSS_NESTING
            yield from _css_rule_features(item, in_style_rule)
        elif isinstance(item, tinycss2.ast.AtRule):
            yield from _css_rule_features(item, in_style_rule)


def _css_rule_features(
    rule: tinycss2.ast.Node, in_style_rule: bool = False
) -> Iterator[tuple[tinycss2.ast.Node, tuple[str, int]]]:
    if isinstance(rule, tinycss2.ast.QualifiedRule):
        yield from _css_selector_features(rule.prelude)
        yield from _css_block_features(rule.content, in_style_rule=True)
    elif isinstance(rule, tinycss2.ast.AtRule):
        if rule.lower_at_keyword in CSS_AT_RULES:
            yield rule, CSS_AT_RULES[rule.lower_at_keyword]
        if rule.lower_at_keyword in ("media", "container", "supports"):
            yield from _css_media_features(rule.prelude)
        if rule.content is not None and rule.lower_at_keyword not in ("keyframes", "font-face"):
            yield from _css_block_features(rule.content, in_style_rule)
        elif rule.content is not None:
            for item in tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True):
                if isinstance(item, tinycss2.ast.QualifiedRule):
                    yield from _css_block_features(item.content, in_style_rule=False)


def scan_css(source: str, file: str, first_line: int = 1) -> list[Finding]:
    """Every use in `source` (a stylesheet) of a CSS feature in the table, nesting included."""
    found = []
    for rule in tinycss2.parse_stylesheet(source, skip_comments=True, skip_whitespace=True):
        if isinstance(rule, tinycss2.ast.ParseError):
            found.append(Finding(file, rule.source_line + first_line - 1, rule.source_column,
                                 f"CSS that does not parse ({rule.message})", NOT_SHIPPED))  # fmt: skip
            continue
        for node, (feature, chromium) in _css_rule_features(rule):
            found.append(Finding(file, node.source_line + first_line - 1, node.source_column, feature, chromium))
    return found


def scan_css_declarations(source: str, file: str, line: int) -> list[Finding]:
    """A `style="..."` attribute's declarations."""
    tokens = tinycss2.parse_component_value_list(source, skip_comments=True)
    return [
        Finding(file, line, 1, feature, chromium)
        for _, (feature, chromium) in _css_block_features(tokens, in_style_rule=False)
    ]


# --- HTML ----------------------------------------------------------------------------------------------------------
class _HtmlScanner(HTMLParser):
    def __init__(self, file: str) -> None:
        super().__init__(convert_charrefs=True)
        self.file = file
        self.findings: list[Finding] = []
        self._inline: tuple[str, int, list[str]] | None = None  # ("style" | "script", first line, chunks)

    def _add(self, feature: tuple[str, int]) -> None:
        line, col = self.getpos()
        self.findings.append(Finding(self.file, line, col + 1, *feature))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HTML_ELEMENTS:
            self._add(HTML_ELEMENTS[tag])
        for name, value in attrs:
            if name in HTML_ATTRIBUTES:
                self._add(HTML_ATTRIBUTES[name])
            if tag == "details" and name == "name":
                self._add(HTML_DETAILS_NAME)
            if name == "style" and value:
                self.findings += scan_css_declarations(value, self.file, self.getpos()[0])
        kind = dict(attrs).get("type") or ""
        if tag == "style" or (tag == "script" and kind in ("", "module", "text/javascript")):
            self._inline = (tag, self.getpos()[0], [])

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline[2].append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._inline is None or tag != self._inline[0]:
            return
        kind, line, chunks = self._inline
        self._inline = None
        text = "".join(chunks)
        if text.strip():
            scan = scan_css if kind == "style" else scan_js
            self.findings += scan(text, self.file, first_line=line)


def scan_html(source: str, file: str) -> list[Finding]:
    """Every use in an HTML page of an element or attribute in the table, and of JS/CSS features inline in it."""
    scanner = _HtmlScanner(file)
    scanner.feed(source)
    scanner.close()
    return scanner.findings


# --- files ---------------------------------------------------------------------------------------------------------
def scan_file(path: Path, name: str | None = None) -> list[Finding]:
    """All uses of table features in one .js/.mjs/.css/.html file, named `name` (default: the path) in findings."""
    text = path.read_text(encoding="utf-8")
    label = name or str(path)
    if path.suffix == ".css":
        return scan_css(text, label)
    if path.suffix == ".html":
        return scan_html(text, label)
    return scan_js(text, label)


def scanned_files(root: Path) -> list[Path]:
    """The files under `root` (or `root` itself) that a scan reads, in a stable order."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SCANNED_SUFFIXES)


def newer_than_baseline(findings: Iterable[Finding], baseline: int = BASELINE_CHROMIUM) -> list[Finding]:
    """The findings an engine of Chromium `baseline` lacks, less KNOWN_HOMONYMS (matched by file name, counted)."""
    newer = [f for f in findings if f.chromium > baseline]
    allowed = dict(KNOWN_HOMONYMS)
    kept = []
    for finding in newer:
        key = (Path(finding.file).name, finding.feature)
        if allowed.get(key, 0) > 0:
            allowed[key] -= 1
            continue
        kept.append(finding)
    return kept


def scan_tree(root: Path, baseline: int = BASELINE_CHROMIUM) -> list[Finding]:
    """Every use of a feature newer than Chromium `baseline` in the files under `root`, named relative to it."""
    base = root if root.is_dir() else root.parent
    findings = []
    for path in scanned_files(root):
        findings += scan_file(path, str(path.relative_to(base)))
    return newer_than_baseline(findings, baseline)


_BUILTIN_PATH = re.compile(r"^[A-Z][\w$]*(\.[\w$]+)*$")


def builtins_removed_script(baseline: int = BASELINE_CHROMIUM) -> str:
    """A script that deletes from a page every built-in in the JS table newer than Chromium `baseline` (the table's
    names are their paths: `Array.prototype.toSorted`, `Object.groupBy`, `Float16Array`), before the page's own
    scripts run (Playwright's `add_init_script`): today's Chromium then lacks what Chromium 103 lacks, as far as
    the table knows, and a page that calls one throws instead of working by luck. Syntax cannot be removed so;
    the scan covers it."""
    paths = sorted(
        {name for name, chromium in [*JS_MEMBERS.values(), *JS_STATICS.values(), *JS_GLOBALS.values()]
         if chromium > baseline and _BUILTIN_PATH.match(name)}
    )  # fmt: skip
    # %TypedArray%.prototype has the copying methods too (toSorted, toReversed, with).
    return f"""(() => {{
  const typedArray = Object.getPrototypeOf(Int8Array.prototype);
  for (const path of {json.dumps(paths)}) {{
    const parts = path.split(".");
    const name = parts.pop();
    let owner = globalThis;
    for (const part of parts) owner = owner == null ? undefined : owner[part];
    const owners = path.startsWith("Array.prototype.") ? [owner, typedArray] : [owner];
    for (let o of owners) {{
      while (o != null && !Object.prototype.hasOwnProperty.call(o, name)) o = Object.getPrototypeOf(o);
      try {{ if (o != null) delete o[name]; }} catch (error) {{ /* not configurable: a well-known symbol */ }}
    }}
  }}
}})();"""


def main(argv: list[str]) -> int:
    """Scan the files or folders named in `argv`; print what is newer than the baseline; 1 when anything is."""
    if not argv:
        print("usage: python -m vtpose.testing.web_baseline PATH...", file=sys.stderr)
        return 2
    findings = [finding for arg in argv for finding in scan_tree(Path(arg))]
    for finding in findings:
        print(finding)
    print(f"{len(findings)} uses of features newer than Chromium {BASELINE_CHROMIUM}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
