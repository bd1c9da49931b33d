"""The value syntaxes of key/value secrets: where the value of a key found in text is.

``keys.py`` finds the keys (by their triggers) and handles the common ``key=value`` shape
inline; everything else (quotes, XML elements and name/value pairs, JSON, YAML blocks and
name/value entries, properties continuations, shell exports) is read here.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple  # noqa: UP035

from koncis_diag.redaction.matching import MARKER, Batch

VALUE_CAP = 64 * 1024  # longest multi-line value followed in config formats
TAG_CAP = 4096  # longest XML start tag followed
_TAG_REST = re.compile(rb"(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")  # the rest of a start tag

_SPACE = b" \t\r\n"
_SEP_FIRST = frozenset(b" \t:=")  # what a separator (``SEPARATOR``) can begin with
MARKUP_BEFORE = frozenset(b"<:\"'>")  # bytes before a key that value_spans looks into
CACHE_SIZE = 4096  # entries of the per-key memo (keys.py) before it starts over

SEPARATOR = re.compile(rb"[ \t]*(?:=>|:=|[:=])(?![:=])[ \t]*")
# A bare value: up to whitespace, '&', a quote or '<'; a ',', ';' or '|' ends it only when another
# key=value follows (``user=postgres,db=jira``), so ``password=a,b;c`` is taken whole. (The
# alternatives begin with different bytes; ``+`` on the first eats plain runs in one step.)
BARE_VALUE = re.compile(rb"(?:[^\s&\"'<>\\,;|]+|\\(?![\"'])|[,;|](?![\w.-]+[=:]))+")
TRAILING = b",;)]}"
_NAME_ATTR_BEFORE = re.compile(
    rb"(?:\b(?:name|key|id|property|param)[ \t]*=[ \t]*\\?)\Z", re.IGNORECASE
)
_JSON_NAME_BEFORE = re.compile(rb"[\"'](?:name|key)[\"'][ \t]*:[ \t]*\Z", re.IGNORECASE)
_JSON_VALUE_AFTER = re.compile(rb"[^{}]{0,512}?[\"']value[\"'][ \t]*:[ \t]*", re.IGNORECASE)
_VALUE_ATTR = re.compile(rb"\bvalue[ \t]*=[ \t]*([\"'])", re.IGNORECASE)
_VALUE_TAG = re.compile(rb"[ \t\r\n]*<([A-Za-z_][\w.:-]*)(?:[ \t\r\n][^>]*)?>")
_XML_PREFIX = re.compile(rb"<[A-Za-z_][\w.-]*:\Z")
_YAML_BLOCK = re.compile(rb"[|>][+-]?[0-9]?[+-]?[ \t]*(?:#[^\n]*)?\r?\Z")
_YAML_MAPPING_LINE = re.compile(rb"[ \t]*[^\s#'\"-][^:\n]*:(?:[ \t]|\r?\Z)")
_YAML_NAME_BEFORE = re.compile(
    rb"(?:\A|[\s{,])(?:-[ \t]+)?(?P<k>name|key)[ \t]*:[ \t]*[\"']?\Z", re.IGNORECASE
)
_YAML_FLOW_VALUE = re.compile(rb"[\"']?[ \t]*,[ \t]*value[ \t]*:[ \t]*", re.IGNORECASE)
_YAML_VALUE_KEY = re.compile(rb"value[ \t]*:(?:[ \t]+|(?=\r?\n)|\Z)", re.IGNORECASE)
_FLOW_MAPPING = re.compile(rb"\{[ \t\r]*(?:[\"'}]|\Z|[\w.-]+[ \t]*:[ \t])")
_SIBLING_LINES = 4  # how far below a "name:" line its "value:" may be

Spans = List[Tuple[int, int]]  # noqa: UP006 (runtime alias, Python 3.9)

#: Formats where a key at the start of a line owns the rest of the line as its value.
_WHOLE_LINE_FORMATS = ("properties", "ini", "text")
#: ... and those where a separated value at the start of a line runs to its end.
REST_OF_LINE_FORMATS = (*_WHOLE_LINE_FORMATS, "yaml")


def value_spans(batch: Batch, start: int, end: int) -> Optional[Spans]:
    """Where the value of the key token ``buf[start:end]`` is, by the syntax around it."""
    buf = batch.buf
    before = buf[start - 1] if start > 0 else 0x0A
    if before not in MARKUP_BEFORE:  # the common case: nothing but _plain_key applies
        return _plain_key(batch, start, end) or None
    if before == 0x3C or (before == 0x3A and _XML_PREFIX.search(buf, max(0, start - 64), start)):
        spans = _xml_element(batch, start, end)  # <password ...>value</password>
        if spans is not None:
            return spans or None
    if before in (0x22, 0x27):  # " or '
        spans = _quoted_key(batch, start, end, before)
        if spans is not None:
            return spans or None
    if before == 0x3E and buf.startswith(b"</", end):  # <name>password</name><value>x</value>
        return _value_element(batch, end) or None
    return _plain_key(batch, start, end) or None


def _limit(batch: Batch, pos: int) -> int:
    """How far a value starting at ``pos`` may reach."""
    if batch.structured:
        return min(batch.size, pos + VALUE_CAP)
    return batch.line_end(pos)


def _strip(buf: bytes, start: int, end: int) -> tuple[int, int]:
    while start < end and buf[start] in _SPACE:
        start += 1
    while end > start and buf[end - 1] in _SPACE:
        end -= 1
    return start, end


def checked_spans(batch: Batch, start: int, end: int) -> Spans:
    """One span, unless the value is empty or a placeholder (then no redaction: [])."""
    if end <= start or batch.is_placeholder(batch.buf[start:end]):
        return []
    return [(start, end)]


def _element_text(batch: Batch, content_start: int, name: bytes = b"") -> Spans:
    buf = batch.buf
    limit = _limit(batch, content_start)
    first, _ = _strip(buf, content_start, limit)
    if buf.startswith(b"<![CDATA[", first):
        cdata_end = buf.find(b"]]>", first, limit)
        close = cdata_end + 3 if cdata_end >= 0 else batch.line_end(first)
    else:
        close = buf.find(b"</", content_start, limit)
        if close < 0:
            close = batch.line_end(content_start)
    start, end = _strip(buf, content_start, close)
    if buf.find(b"<", start, end) >= 0 and not buf.startswith(b"<![CDATA[", start):
        # Mixed content or child elements (``<password><value>x</value></password>``,
        # ``<password>x<br>``): every text between tags, up to the element's own end tag.
        own_end = buf.find(b"</" + name, content_start, limit) if name else -1
        return _text_runs(batch, start, own_end if own_end > close else close)
    return checked_spans(batch, start, end)


def _text_runs(batch: Batch, start: int, end: int) -> Spans:
    """The spans of text outside tags in ``buf[start:end]`` (placeholders left alone)."""
    buf = batch.buf
    spans: Spans = []
    at = start
    while at < end:
        tag = buf.find(b"<", at, end)
        text_start, text_end = _strip(buf, at, end if tag < 0 else tag)
        spans.extend(checked_spans(batch, text_start, text_end))
        if tag < 0:
            break
        tag_end = buf.find(b">", tag, end)
        if tag_end < 0:
            break  # an unfinished tag: nothing after it is text
        at = tag_end + 1
    return spans


def _xml_element(batch: Batch, start: int, end: int) -> Optional[Spans]:
    buf = batch.buf
    if end >= batch.size or buf[end] not in b"> \t\r\n/":
        return None
    limit = min(batch.size, end + TAG_CAP) if batch.structured else batch.line_end(end)
    tag = _TAG_REST.match(buf, end, limit)  # quoted attribute values may hold '>'
    if tag is None:
        return None
    tag_end = tag.end() - 1
    if buf[tag_end - 1] == 0x2F:  # <password/>, <user name="x" password="<secret>"/>
        return []
    return _element_text(batch, tag_end + 1, buf[start:end])


def _quoted_key(batch: Batch, start: int, end: int, quote: int) -> Optional[Spans]:
    buf = batch.buf
    escaped = start >= 2 and buf[start - 2] == 0x5C
    closing = (b"\\" if escaped else b"") + bytes([quote])
    if not buf.startswith(closing, end):
        return None
    after = end + len(closing)
    line_end = batch.line_end(after)
    sep = SEPARATOR.match(buf, after, line_end)
    if sep is not None:
        return _value_at(batch, sep.end(), start, plain_key=False)
    opening = start - len(closing)
    window_start = max(batch.line_start(start) if not batch.structured else 0, opening - 64)
    if _NAME_ATTR_BEFORE.search(buf, window_start, opening):
        return _name_value_tag(batch, after)
    if _JSON_NAME_BEFORE.search(buf, window_start, opening):
        value_key = _JSON_VALUE_AFTER.match(buf, after, _limit(batch, after))
        if value_key is not None:
            return _value_at(batch, value_key.end(), start, plain_key=False)
    return None


def _name_value_tag(batch: Batch, after: int) -> Spans:
    """``<property name="x.password" value="v"/>`` or ``<entry key="password">v</entry>``."""
    buf = batch.buf
    limit = min(batch.size, after + TAG_CAP) if batch.structured else batch.line_end(after)
    tag_end = buf.find(b">", after, limit)
    if tag_end < 0:
        tag_end = limit
    attr = _VALUE_ATTR.search(buf, after, tag_end)
    if attr is not None:
        return _quoted_value(batch, attr.end() - 1)
    if tag_end >= limit or buf[tag_end - 1] == 0x2F:
        return []
    return _element_text(batch, tag_end + 1)


def _value_element(batch: Batch, end: int) -> Spans:
    buf = batch.buf
    close_end = buf.find(b">", end, batch.line_end(end))
    if close_end < 0:
        return []
    limit = min(batch.size, close_end + TAG_CAP) if batch.structured else batch.line_end(close_end)
    tag = _VALUE_TAG.match(buf, close_end + 1, limit)
    if tag is None or b"value" not in tag.group(1).lower() or buf[tag.end() - 2] == 0x2F:
        return []
    return _element_text(batch, tag.end())


def _plain_key(batch: Batch, start: int, end: int) -> Spans:
    buf = batch.buf
    line_start = buf.rfind(b"\n", 0, start) + 1
    line_end = buf.find(b"\n", end)
    if line_end < 0:
        line_end = batch.size
    if end < line_end and buf[end] in _SEP_FIRST:
        sep = SEPARATOR.match(buf, end, line_end)
        if sep is not None:  # the separator never leaves the line: same line bounds
            return _value_at(batch, sep.end(), start, plain_key=True, line=(line_start, line_end))
    spans = _yaml_name_value(batch, start, end, line_start, line_end)
    if spans is not None:
        return spans
    if buf[start] == 0x2D and buf[start + 1 : start + 2] != b"D" and buf[end : end + 1] == b" ":
        return _token(batch, end + 1, line_end) if buf[end + 1 : end + 2] != b"-" else []
    # ``bindpw secret`` / ``password secret`` alone on a line (sudo-ldap.conf, .properties)
    if buf[line_start:start].strip() or batch.fmt not in _WHOLE_LINE_FORMATS:
        return []
    if end >= line_end or buf[end] not in b" \t":
        return []
    value_start, value_end = _strip(buf, end, line_end)
    if batch.fmt != "properties" and re.search(rb"\s", buf[value_start:value_end]):
        return []
    return checked_spans(batch, value_start, value_end)


def _yaml_name_value(
    batch: Batch, start: int, end: int, line_start: int, line_end: int
) -> Optional[Spans]:
    """``- name: DB_PASSWORD`` with a sibling ``value: x`` (Kubernetes env lists and other
    YAML name/value lists), also ``{name: DB_PASSWORD, value: x}`` on one line."""
    buf = batch.buf
    before = _YAML_NAME_BEFORE.search(buf, max(line_start, start - 64), start)
    if before is None:
        return None
    flow = _YAML_FLOW_VALUE.match(buf, end, line_end)
    if flow is not None:
        return _value_at(batch, flow.end(), start, plain_key=True) or []
    if not batch.structured or batch.fmt != "yaml":
        return None
    column = before.start("k") - line_start
    cursor = line_end + 1
    for _ in range(_SIBLING_LINES):
        if cursor >= batch.size:
            break
        next_end = batch.line_end(cursor)
        if _indent(buf, cursor, next_end) != column:
            break  # a sibling has the same indentation; anything else ends the mapping
        found = _YAML_VALUE_KEY.match(buf, cursor + column, next_end)
        if found is not None:
            return _value_at(batch, found.end(), cursor + column, plain_key=True) or []
        cursor = next_end + 1
    return None


def _value_at(
    batch: Batch,
    pos: int,
    key_start: int,
    *,
    plain_key: bool,
    line: Optional[tuple[int, int]] = None,
) -> Spans:
    """The value that starts at ``pos`` (just after the separator). ``line``: the start and
    end of the line holding ``key_start`` and ``pos``, when the caller knows them."""
    buf = batch.buf
    line_end = batch.line_end(pos) if line is None else line[1]
    if pos >= line_end:
        return _value_below(batch, key_start, line_end)
    first = buf[pos]
    if first in (0x22, 0x27) or (first == 0x5C and buf[pos + 1 : pos + 2] in (b'"', b"'")):
        return _quoted_value(batch, pos)
    if first == 0x5B:  # a marker, or [a, b]: a list of scalars on one line
        marker = MARKER.match(buf, pos, line_end)
        if marker is not None:
            return [(pos, marker.end())]  # already redacted: claimed, left as is
        close = buf.find(b"]", pos, line_end)
        inner = buf[pos + 1 : close] if close >= 0 else b"{"
        if b"[" in inner or b"{" in inner:
            return []
        start, end = _strip(buf, pos + 1, close)
        return checked_spans(batch, start, end)
    if first == 0x7B and (pos + 1 >= line_end or _FLOW_MAPPING.match(buf, pos, line_end)):
        return []  # a nested object: its own keys are looked at separately
    fmt = batch.fmt
    if fmt == "yaml" and first in (0x7C, 0x3E) and _YAML_BLOCK.match(buf, pos, line_end):
        return _yaml_block(batch, key_start, line_end)
    if fmt in REST_OF_LINE_FORMATS:
        line_start = batch.line_start(key_start) if line is None else line[0]
        if buf[line_start:key_start].strip() in (b"", b"-"):  # the key starts the line
            return _rest_of_line(batch, pos, line_end)
    return _token(batch, pos, line_end)


def _token(batch: Batch, pos: int, line_end: int) -> Spans:
    buf = batch.buf
    match = BARE_VALUE.match(buf, pos, line_end)
    if match is None:
        return []
    start, end = match.span()
    value = buf[start:end]
    if batch.is_placeholder(value):
        return []
    trimmed = value.rstrip(TRAILING)
    if len(trimmed) == len(value):
        return [(start, end)]  # non-empty, and not a placeholder: checked just above
    return checked_spans(batch, start, start + len(trimmed))


def _rest_of_line(batch: Batch, pos: int, line_end: int) -> Spans:
    buf = batch.buf
    end = line_end
    if batch.fmt == "yaml":
        comment = buf.find(b" #", pos, line_end)
        if comment >= 0:
            end = comment
    elif batch.fmt == "properties":
        while end < batch.size and _continued(buf, pos, end):
            end = batch.line_end(end + 1)
    elif batch.fmt == "ini":
        while end + 1 < batch.size and buf[end + 1] in b" \t":
            next_end = batch.line_end(end + 1)
            if not buf[end + 1 : next_end].strip():
                break
            end = next_end
    start, end = _strip(buf, pos, end)
    return checked_spans(batch, start, end)


def _continued(buf: bytes, start: int, end: int) -> bool:
    """A .properties line ending in an odd number of backslashes continues on the next one."""
    stop = end - 1 if end > start and buf[end - 1] == 0x0D else end
    count = 0
    while stop - 1 - count >= start and buf[stop - 1 - count] == 0x5C:
        count += 1
    return count % 2 == 1


def _quoted_value(batch: Batch, pos: int) -> Spans:
    buf = batch.buf
    escaped = buf[pos] == 0x5C
    quote = buf[pos + 1] if escaped else buf[pos]
    opening = 2 if escaped else 1
    start = pos + opening
    multi_line = batch.structured and batch.fmt in ("yaml", "shell", "ini", "properties")
    limit = min(batch.size, start + VALUE_CAP) if multi_line else batch.line_end(start)
    needle = b"\\" + bytes([quote]) if escaped else bytes([quote])
    cursor = start
    while True:
        close = buf.find(needle, cursor, limit)
        if close < 0:
            return checked_spans(batch, start, batch.line_end(start))  # unterminated: rest of line
        if not escaped and quote == 0x22 and _backslashes_before(buf, close, start) % 2 == 1:
            cursor = close + 1
            continue
        if (
            not escaped
            and quote == 0x27
            and batch.fmt == "yaml"
            and buf[close + 1 : close + 2] == b"'"
        ):
            cursor = close + 2
            continue
        return checked_spans(batch, start, close)


def _backslashes_before(buf: bytes, pos: int, floor: int) -> int:
    count = 0
    while pos - 1 - count >= floor and buf[pos - 1 - count] == 0x5C:
        count += 1
    return count


def _indent(buf: bytes, line_start: int, line_end: int) -> int:
    cursor = line_start
    while cursor < line_end and buf[cursor] in b" \t":
        cursor += 1
    return cursor - line_start


def _yaml_block(batch: Batch, key_start: int, line_end: int) -> Spans:
    """``password: |`` followed by more-indented lines: the whole block."""
    buf = batch.buf
    key_indent = key_start - batch.line_start(key_start)
    first = last = -1
    cursor = line_end + 1
    while cursor < batch.size:
        end = batch.line_end(cursor)
        if buf[cursor:end].strip():
            if _indent(buf, cursor, end) <= key_indent:
                break
            if first < 0:
                first = cursor + _indent(buf, cursor, end)
            last = end
        cursor = end + 1
    if first < 0:
        return []
    start, end = _strip(buf, first, last)
    return checked_spans(batch, start, end)


def _value_below(batch: Batch, key_start: int, line_end: int) -> Spans:
    """An empty value on the key's line: in YAML the value may follow on the next lines, as a
    list of scalars or an indented plain scalar; in INI as indented continuation lines."""
    if not batch.structured or batch.fmt not in ("yaml", "ini"):
        return []
    buf = batch.buf
    key_indent = key_start - batch.line_start(key_start)
    spans: Spans = []
    cursor = line_end + 1
    while cursor < batch.size:
        end = batch.line_end(cursor)
        text = buf[cursor:end]
        if not text.strip() or text.lstrip().startswith(b"#"):
            cursor = end + 1
            continue
        indent = _indent(buf, cursor, end)
        item_start = cursor + indent
        is_item = buf.startswith(b"- ", item_start) or buf[item_start:end].rstrip() == b"-"
        if batch.fmt == "yaml" and is_item and indent >= key_indent:
            value_start = item_start + 2
            if _YAML_MAPPING_LINE.match(buf, value_start, end):
                return spans
            spans.extend(_scalar_spans(batch, value_start, end))
        elif indent > key_indent and (
            batch.fmt == "ini" or not _YAML_MAPPING_LINE.match(buf, cursor, end)
        ):
            start, stop = _strip(buf, item_start, end)
            spans.extend(checked_spans(batch, start, stop))
        else:
            return spans
        cursor = end + 1
    return spans


def _scalar_spans(batch: Batch, start: int, end: int) -> Spans:
    buf = batch.buf
    start, end = _strip(buf, start, end)
    if start < end and buf[start] in (0x22, 0x27):
        return _quoted_value(batch, start)
    comment = buf.find(b" #", start, end)
    if comment >= 0:
        start, end = _strip(buf, start, comment)
    return checked_spans(batch, start, end)
