"""HTML to its title and readable text, in one linear pass with bounded work.

A hostile page must not be able to make this slow or big. A DOM parser does not fit: HTML5 tree builders walk
their stack of open elements for many tags (is there a `<p>` to close? an `<li>`?), so deep nesting is quadratic
(Lexbor took 158 s for 190,000 nested `<div>`s, 2 MB) and, being one C call, cannot be stopped midway. So the page
is read here as a stream of tags and text:

* a tokenizer (regular expressions with possessive quantifiers, which cannot backtrack) finds tags, comments and
  raw-text elements; at EOF inside a tag or comment it stops, as HTML does;
* a stack of open elements with per-name indexes, so that closing an element or deciding an implied end (a `<p>`
  before a block, an `<li>` after an `<li>`, table cells) takes constant time;
* per element, from its tag and attributes, whether it is "noise" (scripts, navigation, hidden…) and whether it
  is a block (a line of its own).

And the work has limits (`HtmlLimits`): nesting deeper than `max_depth` is read as siblings (as Chromium's
parser does beyond 512), at most `max_tags` tags are read, reading stops once `max_text_chars` of text are
collected, and the deadline is checked as it goes. What was cut is said in `HtmlText.notes`.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field

_WS = "\t\n\f\r "
# a start or end tag: the name, then attributes (a quoted value may hold ">"), then ">"
_TAG = re.compile(rf"""<(/?)([A-Za-z][^{_WS}/>]*+)((?:[^>"'=]++|=[{_WS}]*+(?:"[^"]*+"|'[^']*+'|)|["'])*+)>""")
_ATTRIBUTE = re.compile(rf"""([^{_WS}/>][^{_WS}/>=]*+)
                            (?:[{_WS}]*+=[{_WS}]*+(?:"([^"]*+)"|'([^']*+)'|([^{_WS}>]*+)))?""", re.VERBOSE)
_COMMENT_END = re.compile(r"--!?>")
# where markup starts: a tag, an end tag, a comment or declaration (<!…), a processing instruction (<?…, a bogus
# comment in HTML) or </…; any other "<" is text
_OPENER = re.compile(r"<[A-Za-z/!?]")

VOID = frozenset({"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img",
                  "input", "keygen", "link", "meta", "param", "source", "track", "wbr"})
# content that is not markup: skipped (script…), the title, or text (textarea: entities decoded; xmp: as written)
_RAW_TEXT = frozenset({"script", "style", "iframe", "noembed", "noframes", "noscript", "title", "textarea", "xmp"})
_RAW_END = {name: re.compile(rf"</{name}[{_WS}/>]", re.IGNORECASE) for name in _RAW_TEXT}
NOISE = frozenset({"head", "script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object",
                   "embed", "nav", "aside", "footer", "form", "button", "select", "dialog", "noembed", "noframes"})
BLOCKS = frozenset({"address", "article", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure", "h1", "h2",
                    "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "ol", "p", "pre", "section", "table", "tr",
                    "ul", "textarea", "xmp"})
_HEAD_CONTENT = frozenset({"base", "basefont", "bgsound", "link", "meta", "title", "noscript", "noframes", "style",
                           "script", "template", "head"})
# start tags that close an open <p> (HTML's "close a p element" in button scope)
_CLOSES_P = frozenset({"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl",
                       "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
                       "header", "hgroup", "hr", "li", "dd", "dt", "main", "menu", "nav", "ol", "p", "pre", "listing",
                       "search", "section", "summary", "table", "ul", "xmp", "plaintext"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# where "is there an open <p> / <a> / <button>" stops looking (HTML's scope markers, with SVG and MathML roots)
_SCOPE = frozenset({"applet", "caption", "table", "td", "th", "marquee", "object", "template", "button", "svg",
                    "math"})
# where "is there an open <li> / <dd> / <dt>" stops looking: HTML's special elements but address, div and p
_BARRIER = _SCOPE | frozenset({"article", "aside", "blockquote", "center", "details", "dialog", "dir", "dl",
                               "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "main",
                               "menu", "nav", "ol", "section", "select", "summary", "tbody", "tfoot", "thead", "tr",
                               "ul", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "listing"})
_CONTENT = frozenset({"article", "main", "section"})  # a <header> inside one of these is content, not page chrome

# start tags that close an open element of theirs, if it is open inside the nearest boundary of a kind
_LIMIT_SCOPE, _LIMIT_BARRIER, _LIMIT_TABLE = 0, 1, 2
_IMPLIED: dict[str, tuple[tuple[str, ...], int]] = {
    "li": (("li",), _LIMIT_BARRIER), "dd": (("dd", "dt"), _LIMIT_BARRIER), "dt": (("dd", "dt"), _LIMIT_BARRIER),
    "td": (("td", "th"), _LIMIT_TABLE), "th": (("td", "th"), _LIMIT_TABLE), "tr": (("tr", "td", "th"), _LIMIT_TABLE),
    **{part: (("tbody", "thead", "tfoot", "tr", "td", "th"), _LIMIT_TABLE) for part in ("tbody", "thead", "tfoot")},
    "a": (("a",), _LIMIT_SCOPE), "button": (("button",), _LIMIT_SCOPE), "option": (("option",), _LIMIT_SCOPE),
    "optgroup": (("option",), _LIMIT_SCOPE),
}

# element flags
_BLOCK, _NOISE, _SCOPED, _BARRED, _IN_CONTENT, _FOREIGN = 1, 2, 4, 8, 16, 32


@dataclass(frozen=True)
class HtmlLimits:
    """How much work one page may take. `deadline` is a `time.monotonic()` value; None: no deadline."""

    max_depth: int = 512
    max_tags: int = 250_000
    max_text_chars: int | None = None
    deadline: float | None = None


@dataclass(frozen=True)
class HtmlText:
    title: str
    text: str
    notes: tuple[str, ...] = field(default=())


def html_to_text(markup: str) -> tuple[str, str]:
    """An HTML page's title and readable text: the visible text, a line per block (list items start with "- "),
    without scripts, styles, hidden elements, navigation, asides, footers, forms or the page-level `header`."""
    page = extract_html(markup)
    return page.title, page.text


def clean_lines(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def is_hidden(attributes: str) -> bool:
    """Whether a tag's attributes hide the element: `hidden`, `aria-hidden="true"`, or `display: none` or
    `visibility: hidden` in its `style` (the first of repeated attributes counts, as in HTML)."""
    seen: set[str] = set()
    for name, double, single, bare in _ATTRIBUTE.findall(attributes):
        name = name.lower()
        if name in seen:
            continue
        seen.add(name)
        value = html.unescape(double or single or bare).lower()
        if name == "hidden" or (name == "aria-hidden" and value == "true"):
            return True
        if name == "style" and any(rule in value for rule in ("display:none", "display: none", "visibility:hidden",
                                                               "visibility: hidden")):
            return True
    return False


def _may_hide(attributes: str) -> bool:
    lowered = attributes.lower()
    return "hidden" in lowered or "none" in lowered


class _Reader:
    """The text collected from tags and text, with the stack of open elements."""

    def __init__(self, limits: HtmlLimits) -> None:
        self.limits = limits
        self.stack: list[tuple[str, int]] = []
        self.open_at: dict[str, list[int]] = {}  # element name -> the stack indexes where it is open
        self.scope_at: list[int] = []
        self.barrier_at: list[int] = []
        self.table_at: list[int] = []
        self.noise = 0  # noise elements open
        self.content = 0  # article/main/section open
        self.foreign = 0  # svg/math open
        self.parts: list[str] = []
        self.collected = 0  # characters in parts
        self.next_check = 4096  # when to see whether max_text_chars is reached
        self.title: str | None = None
        self.heading: list[str] | None = None  # the first <h1>'s text, while it is open
        self.heading_at = -1
        self.first_heading = ""
        self.flattened = 0  # elements beyond max_depth, read as siblings
        self.skipping: str | None = None  # a noise element beyond max_depth: its name, while skipping it
        self.skip_depth = 0

    # -- text --

    def text(self, raw: str) -> None:
        if self.skipping is not None:
            return
        if "&" in raw:
            raw = html.unescape(raw)
        if self.heading is not None:
            self.heading.append(raw)
        if self.stack and self.stack[-1][0] == "head" and not raw.isspace():
            self.pop_to(self.open_at["head"][-1])  # text ends the <head>, as in HTML
        if self.noise == 0:
            self.emit(raw)

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.collected += len(text)

    def text_full(self) -> bool:
        """Whether max_text_chars of text is already collected (checked as the text doubles: linear overall)."""
        limit = self.limits.max_text_chars
        if limit is None or self.collected < self.next_check:
            return False
        self.next_check = self.collected * 2
        return len(clean_lines("".join(self.parts))) > limit

    def raw_text(self, name: str, content: str) -> None:
        """The content of a raw-text element (`<title>`, `<textarea>`, `<script>`…)."""
        if name == "title":
            if self.title is None and self.foreign == 0:
                self.title = " ".join(html.unescape(content).split())
        elif name == "textarea":
            self.text(content)
        elif name in ("xmp", "plaintext") and self.noise == 0 and self.skipping is None:
            self.emit(content)  # as written: no character references in these

    # -- tags --

    def start(self, name: str, attributes: str) -> None:
        if self.skipping is not None:
            self.skip_depth += name == self.skipping
            return
        if name in ("html", "body"):
            self.close("head")
            return
        if self.open_at.get("head") and name not in _HEAD_CONTENT:
            self.close("head")
        self.implied_ends(name)
        if name in VOID:
            if name in ("br", "hr") and self.noise == 0:
                self.emit("\n")
            return
        if (self.foreign or name in ("svg", "math")) and attributes.endswith("/"):
            return  # a self-closing SVG or MathML element (<svg/> too); <div/> is not self-closing in HTML
        flags = _BLOCK if name in BLOCKS else 0
        if name in NOISE or (name == "header" and self.content == 0) or (attributes and _may_hide(attributes)
                                                                         and is_hidden(attributes)):
            flags |= _NOISE
        if len(self.stack) >= self.limits.max_depth:
            self.flattened += 1
            if flags & _NOISE:
                self.skipping, self.skip_depth = name, 1
            elif flags & _BLOCK and self.noise == 0:
                self.emit("\n")
            return
        self.push(name, flags)

    def push(self, name: str, flags: int) -> None:
        index = len(self.stack)
        if name in _SCOPE:
            flags |= _SCOPED
            self.scope_at.append(index)
        if name in _BARRIER:
            flags |= _BARRED
            self.barrier_at.append(index)
        if name == "table":
            self.table_at.append(index)
        if name in _CONTENT:
            flags |= _IN_CONTENT
            self.content += 1
        if name in ("svg", "math"):
            flags |= _FOREIGN
            self.foreign += 1
        if flags & _NOISE:
            self.noise += 1
        if flags & _BLOCK and self.noise == 0:
            self.emit("\n- " if name == "li" else "\n")
        if name == "h1" and self.heading is None and self.heading_at < 0:
            self.heading, self.heading_at = [], index
        self.stack.append((name, flags))
        self.open_at.setdefault(name, []).append(index)

    def end(self, name: str) -> None:
        if self.skipping is not None:
            if name == self.skipping:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skipping = None
                return
            if not self.open_at.get(name):
                return
            self.skipping = None  # an enclosing element ends: so does the skipped one
        if name in ("br", "p") and not self.open_at.get(name):
            if self.noise == 0:
                self.emit("\n")  # HTML reads </br> as <br>, and a stray </p> as an empty paragraph
            return
        if name not in ("html", "body") and self.open_at.get(name):
            self.pop_to(self.open_at[name][-1])

    def close(self, name: str) -> None:
        if self.open_at.get(name):
            self.pop_to(self.open_at[name][-1])

    def pop_to(self, index: int) -> None:
        """Close the element at `index` and everything opened inside it."""
        while len(self.stack) > index:
            name, flags = self.stack.pop()
            self.open_at[name].pop()
            if flags & _SCOPED:
                self.scope_at.pop()
            if flags & _BARRED:
                self.barrier_at.pop()
            if name == "table":
                self.table_at.pop()
            if flags & _IN_CONTENT:
                self.content -= 1
            if flags & _FOREIGN:
                self.foreign -= 1
            if flags & _NOISE:
                self.noise -= 1
            if flags & _BLOCK and self.noise == 0:
                self.emit("\n")
            if len(self.stack) == self.heading_at and self.heading is not None:
                self.first_heading = " ".join("".join(self.heading).split())
                self.heading = None

    def nearest(self, names: tuple[str, ...]) -> int:
        """The stack index of the innermost open element among `names`, or -1."""
        found = -1
        for name in names:
            at = self.open_at.get(name)
            if at and at[-1] > found:
                found = at[-1]
        return found

    def implied_ends(self, name: str) -> None:
        """Close what a start tag implicitly ends in HTML (approximately: enough that sloppy pages, with their
        unclosed `<p>`, `<li>` and `<td>`, do not nest ever deeper). Each check is a few index comparisons."""
        scope = self.scope_at[-1] if self.scope_at else -1
        if name in _CLOSES_P and (p := self.nearest(("p",))) > scope:
            self.pop_to(p)
        closes, limit = _IMPLIED.get(name, ((), -1))
        if not closes:
            if name in _HEADINGS and self.stack and self.stack[-1][0] in _HEADINGS:
                self.pop_to(len(self.stack) - 1)
            return
        boundary = {_LIMIT_SCOPE: scope, _LIMIT_BARRIER: self.barrier_at[-1] if self.barrier_at else -1,
                    _LIMIT_TABLE: self.table_at[-1] if self.table_at else -1}[limit]
        if (open_at := self.nearest(closes)) > boundary:
            self.pop_to(open_at)


def extract_html(markup: str, limits: HtmlLimits = HtmlLimits()) -> HtmlText:  # frozen: a safe default
    """The title (`<title>`, else the first `<h1>`) and the readable text of a page, within `limits`."""
    reader = _Reader(limits)
    notes: list[str] = []
    position, constructs = 0, 0
    while (opener := _OPENER.search(markup, position)) is not None:
        start = opener.start()
        if start > position:
            reader.text(markup[position:start])
        constructs += 1
        if constructs % 1024 == 0:
            if limits.deadline is not None and time.monotonic() > limits.deadline:
                notes.append("HTML reading stopped at the deadline")
                break
            if reader.text_full():
                break
        if constructs > limits.max_tags:
            notes.append(f"HTML reading stopped after {limits.max_tags} tags")
            break
        after = _read_construct(markup, start, reader)
        if after is None:
            break  # EOF inside a tag, comment or raw-text element: the rest is not read, as in HTML
        position = after
    else:
        reader.text(markup[position:])
    if reader.flattened:
        notes.append(f"{reader.flattened} elements nested deeper than {limits.max_depth} were read as siblings")
    heading = reader.first_heading or (" ".join("".join(reader.heading).split()) if reader.heading else "")
    title = reader.title if reader.title is not None else heading
    return HtmlText(title, clean_lines("".join(reader.parts)), tuple(notes))


def _read_construct(markup: str, start: int, reader: _Reader) -> int | None:
    """Read the tag, comment or declaration at `start` (and a raw-text element's content); where reading goes on,
    or None at EOF."""
    if markup.startswith("<!--", start):
        if markup.startswith(("<!-->", "<!--->"), start):
            return markup.index(">", start) + 1
        comment_end = _COMMENT_END.search(markup, start + 4)
        return comment_end.end() if comment_end else None
    if markup.startswith("<![CDATA[", start):
        cdata_end = markup.find("]]>", start)
        return cdata_end + 3 if cdata_end >= 0 else None
    tag = _TAG.match(markup, start) if markup[start + 1].isalpha() or markup[start + 2:start + 3].isalpha() else None
    if tag is None:  # a doctype, a bogus comment (<?…>, </1…>) or </>: up to the next ">"
        close = markup.find(">", start + 2)
        return close + 1 if close >= 0 and not markup[start + 1].isalpha() else None
    closing, name, attributes = tag.group(1), tag.group(2).lower(), tag.group(3)
    if closing:
        reader.end(name)
        return tag.end()
    reader.start(name, attributes)
    if name == "plaintext":
        reader.raw_text(name, markup[tag.end():])
        return None
    if name not in _RAW_TEXT or reader.foreign:
        return tag.end()
    end = _RAW_END[name].search(markup, tag.end())
    reader.raw_text(name, markup[tag.end():end.start() if end else len(markup)])
    return end.start() if end else None
