"""A fetched page's bytes to text, with bounded work: decoding by text encodings only, then HTML to text, in a
pool of threads of its own.

The page chooses its encoding (`Content-Type; charset=`, `<meta charset>`, `<?xml encoding?>`), so the name is
hostile input. Python's codec registry also holds bytes-to-bytes codecs (`bz2_codec`, `zlib_codec`,
`base64_codec`…) that decompress a whole body in one call: 786 bytes of bz2 asked for 2 GB. So a name is looked up
in the WHATWG Encoding Standard's labels (what browsers accept), never in the codec registry, and decoding is done
piece by piece and stops at a character budget.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from localive.tools.url_html import HtmlLimits, extract_html

# The WHATWG Encoding Standard's labels, by the Python codec that decodes them as browsers do (GBK is decoded as
# gb18030, Big5 as Big5-HKSCS, Shift_JIS as Windows-31J, EUC-KR as Windows-949). Not here, so read by the
# fallbacks: the "replacement" labels (ISO-2022-KR/CN, HZ) and x-user-defined.
_WHATWG: dict[str, tuple[str, ...]] = {
    "utf-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"),
    "cp866": ("866", "cp866", "csibm866", "ibm866"),
    "iso8859_2": ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2",
                  "iso_8859-2:1987", "l2", "latin2"),
    "iso8859_3": ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3",
                  "iso_8859-3:1988", "l3", "latin3"),
    "iso8859_4": ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4",
                  "iso_8859-4:1988", "l4", "latin4"),
    "iso8859_5": ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595",
                  "iso_8859-5", "iso_8859-5:1988"),
    "iso8859_6": ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114", "iso-8859-6",
                  "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596", "iso_8859-6",
                  "iso_8859-6:1987"),
    "iso8859_7": ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7", "iso-ir-126",
                  "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek"),
    "iso8859_8": ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e", "iso-ir-138",
                  "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual", "csiso88598i",
                  "iso-8859-8-i", "logical"),
    "iso8859_10": ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6", "latin6"),
    "iso8859_13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "iso8859_14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "iso8859_15": ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9"),
    "iso8859_16": ("iso-8859-16",),
    "koi8_r": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "koi8_u": ("koi8-ru", "koi8-u"),
    "mac_roman": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "cp874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
    "cp1250": ("cp1250", "windows-1250", "x-cp1250"),
    "cp1251": ("cp1251", "windows-1251", "x-cp1251"),
    "cp1252": ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100",
               "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1", "us-ascii",
               "windows-1252", "x-cp1252"),
    "cp1253": ("cp1253", "windows-1253", "x-cp1253"),
    "cp1254": ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
               "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254"),
    "cp1255": ("cp1255", "windows-1255", "x-cp1255"),
    "cp1256": ("cp1256", "windows-1256", "x-cp1256"),
    "cp1257": ("cp1257", "windows-1257", "x-cp1257"),
    "cp1258": ("cp1258", "windows-1258", "x-cp1258"),
    "mac_cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    "gb18030": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58",
                "x-gbk", "gb18030"),
    "big5hkscs": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "euc_jp": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "iso2022_jp": ("csiso2022jp", "iso-2022-jp"),
    "cp932": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis"),
    "cp949": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
              "ksc5601", "ksc_5601", "windows-949"),
    "utf-16-be": ("unicodefffe", "utf-16be"),
    "utf-16-le": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"),
}


def _text_codec(name: str) -> codecs.CodecInfo:
    info = codecs.lookup(name)
    if not info._is_text_encoding:  # a safeguard for the table above: never a bytes-to-bytes codec
        raise LookupError(f"{name} is not a text encoding")
    return info


ENCODINGS: dict[str, codecs.CodecInfo] = {label: _text_codec(codec) for codec, labels in _WHATWG.items()
                                          for label in labels}
_UTF8, _WINDOWS_1252 = ENCODINGS["utf-8"], ENCODINGS["windows-1252"]
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)""", re.IGNORECASE)
_DECODE_PIECE_BYTES = 64 * 1024
P = ParamSpec("P")
T = TypeVar("T")


def encoding_for(label: str | None) -> codecs.CodecInfo | None:
    """The text codec for an encoding label as browsers read it (trimmed, case-insensitive), or None."""
    return ENCODINGS.get(label.strip().lower()) if label else None


def _decode_capped(data: bytes, codec: codecs.CodecInfo, max_chars: int, errors: str = "strict") -> str:
    """`data` decoded piece by piece, at most `max_chars` characters. A character cut at the end is dropped."""
    decoder = codec.incrementaldecoder(errors)
    pieces: list[str] = []
    chars = 0
    for offset in range(0, len(data), _DECODE_PIECE_BYTES):
        piece = decoder.decode(data[offset:offset + _DECODE_PIECE_BYTES], final=False)
        if not isinstance(piece, str):
            raise UnicodeDecodeError(codec.name, data, offset, offset + 1, "not a text encoding")
        if chars + len(piece) >= max_chars:
            pieces.append(piece[:max_chars - chars])
            break
        pieces.append(piece)
        chars += len(piece)
    return "".join(pieces)


def decode_page(data: bytes, declared: str | None, is_html: bool, max_chars: int) -> str:
    """Bytes to at most `max_chars` characters, as browsers choose the encoding: a byte-order mark, the header's
    charset, the document's own declaration (`<meta charset>` in the first 1024 bytes, `<?xml encoding?>`), then
    UTF-8, then windows-1252. A label that is not a WHATWG encoding label is skipped. A multi-byte character cut
    at the end by the size limit is dropped, not mangled."""
    candidates: list[codecs.CodecInfo | None] = []
    for bom, name in _BOMS:
        if data.startswith(bom):
            data = data[len(bom):]
            candidates.append(codecs.lookup(name))
            break
    candidates.append(encoding_for(declared))
    in_document = (_META_CHARSET.search(data[:1024]) if is_html else None) or _XML_ENCODING.search(data[:1024])
    if in_document:
        codec = encoding_for(in_document.group(1).decode("ascii", "replace"))
        # a page whose declaration could be read as ASCII is not UTF-16: browsers take UTF-8 then
        candidates.append(_UTF8 if codec is not None and codec.name.startswith("utf-16") else codec)
    for codec in (*candidates, _UTF8, _WINDOWS_1252):
        if codec is None:
            continue
        try:
            return _decode_capped(data, codec, max_chars)
        except UnicodeDecodeError:
            continue
    return _decode_capped(data, _UTF8, max_chars, errors="replace")


@dataclass(frozen=True)
class PageText:
    title: str
    text: str
    notes: tuple[str, ...] = ()


def page_text(data: bytes, declared: str | None, is_html: bool, *, max_chars: int, max_text_chars: int,
              deadline: float | None) -> PageText:
    """A page's title and text: decoded to at most `max_chars` characters, then, for HTML, read within
    `HtmlLimits` (collecting a little more than `max_text_chars`, so that the caller can say it cut)."""
    text = decode_page(data, declared, is_html, max_chars)
    if not is_html:
        return PageText("", text.strip())
    page = extract_html(text, HtmlLimits(max_text_chars=max_text_chars, deadline=deadline))
    return PageText(page.title, page.text, page.notes)


class ParseLane:
    """One caller's share of the parsing threads (`places`, held until each job's thread is done), and the CPU
    seconds its jobs have taken since the caller last asked (`take_cpu`): a session charges them to its client."""

    def __init__(self, places: int = 1) -> None:
        self.places = asyncio.Semaphore(places)
        self._cpu_s = 0.0
        self._lock = threading.Lock()

    def add_cpu(self, seconds: float) -> None:
        with self._lock:
            self._cpu_s += seconds

    def take_cpu(self) -> float:
        with self._lock:
            spent, self._cpu_s = self._cpu_s, 0.0
        return spent


class ParsePool:
    """A few threads of URL context's own for decoding and parsing pages.

    Not the event loop's default executor: that one also resolves host names, runs the session store and cleans
    up after the sandbox, and a burst of hostile pages must not stall them. A slot is taken before a job is
    submitted and given back only when its thread is really done (a thread cannot be stopped: a fetch that timed
    out leaves its job running to its own limits), so the executor's queue never grows and no more than `workers`
    pages are parsed at once. Waiting for a slot is bounded by the caller's deadline.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run_in_lane(None, function, *args, **kwargs)

    async def run_in_lane(self, lane: ParseLane | None, function: Callable[P, T], *args: P.args,
                          **kwargs: P.kwargs) -> T:
        """Run a job; with a `lane` (one caller's share, e.g. a session's), the job also holds a place of that lane
        until its thread is done, so that one caller cannot take every thread and starve the others, and its CPU
        time is added to the lane's."""
        if self._executor is None or self._slots is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="localive-url-parse")
            self._slots = asyncio.Semaphore(self.workers)
        executor, slots, loop = self._executor, self._slots, asyncio.get_running_loop()
        if lane is not None:
            await lane.places.acquire()
        try:
            await slots.acquire()
        except BaseException:
            if lane is not None:
                lane.places.release()
            raise

        def timed() -> T:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                if lane is not None:
                    lane.add_cpu(time.thread_time() - started)

        try:  # after a close() meanwhile, the old executor refuses (RuntimeError): the fetch is an ERROR
            job = executor.submit(timed)
        except BaseException:
            slots.release()
            if lane is not None:
                lane.places.release()
            raise

        def release() -> None:
            slots.release()
            if lane is not None:
                lane.places.release()

        def done(_: Future[T]) -> None:
            try:
                loop.call_soon_threadsafe(release)
            except RuntimeError:  # the loop is closed: nobody is waiting for a slot any more
                pass

        job.add_done_callback(done)
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        """Stop taking jobs; running ones finish on their own (bounded by their limits)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._slots = None
