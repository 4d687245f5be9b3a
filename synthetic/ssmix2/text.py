"""Text for SS-MIX2 files: normalisation to JIS X 0208 (HL7 escaping itself is :mod:`hl7wire`'s).

SS-MIX2 storage is ISO-2022-JP: ASCII plus JIS X 0208 only. Text from outside that set is normalised by
one documented rule, applied in this order (following NHO practice, docs/ssmix2.md §3.1):

1. variant kanji of real surnames → their JIS X 0208 forms (髙→高, 﨑→崎, 𠮷→吉, 濵→浜, 德→徳, 栁→柳, 桒→桑);
2. half-width katakana → full-width (NFKC on the half-width range only, so full-width Latin stays as is);
3. CP932-only symbols → their JIS forms or ASCII spellings (①→(1), Ⅱ→II, ㎎→mg, ～→〜, －→−, ∥→‖, ￢→¬ …);
4. anything still outside JIS X 0208 → ``■`` (the 外字 convention), so nothing is silently dropped.

:func:`esc` is what the message builders call per data value: this normalisation, then :func:`hl7wire.escape`
(on decoded text, never on JIS bytes, whose second bytes can equal ``|`` or ``^``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from hl7wire import escape

VARIANT_KANJI = {"髙": "高", "﨑": "崎", "𠮷": "吉", "濵": "浜", "德": "徳", "栁": "柳", "桒": "桑"}
CP932_SYMBOLS = {
    "～": "〜",
    "－": "−",
    "∥": "‖",
    "￢": "¬",
    "￠": "¢",
    "￡": "£",
    "—": "―",
    "㎎": "mg",
    "㎏": "kg",
    "㎝": "cm",
    "㎜": "mm",
    "㎡": "m2",
    "㏄": "cc",
    "㍉": "ミリ",
    "㌔": "キロ",
    "㌢": "センチ",
    "㍍": "メートル",
    "㌘": "グラム",
    "㌧": "トン",
    "㍑": "リットル",
    "№": "No.",
    "℡": "TEL",
    "㈱": "(株)",
    "㈲": "(有)",
    "㈹": "(代)",
    "㍻": "平成",
    "㍼": "昭和",
    "㍽": "大正",
    "㍾": "明治",
    "㋿": "令和",
}
CP932_SYMBOLS.update({chr(0x2460 + i): f"({i + 1})" for i in range(20)})  # ①..⑳
CP932_SYMBOLS.update(
    dict(zip("ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ", ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"], strict=True))
)
CP932_SYMBOLS.update(
    dict(zip("ⅰⅱⅲⅳⅴⅵⅶⅷⅸⅹ", ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"], strict=True))
)
GAIJI = "■"
_HALF_WIDTH_KANA = re.compile("[\uff61-\uff9f]+")


def _encodable(ch: str) -> bool:
    try:
        ch.encode("iso2022_jp")
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=65536)
def to_jis(text: str) -> str:
    """Normalise ``text`` so it encodes in ISO-2022-JP (ASCII + JIS X 0208) by the module's rule."""
    try:
        text.encode("iso2022_jp")
    except UnicodeEncodeError:
        pass
    else:
        return text
    # half-width kana runs first, so a voiced mark composes with its kana (ｶﾞ → ガ)
    text = _HALF_WIDTH_KANA.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    out = []
    for ch in text:
        ch = VARIANT_KANJI.get(ch, ch)
        ch = CP932_SYMBOLS.get(ch, ch)
        out.append(ch if all(_encodable(c) for c in ch) else GAIJI)
    return "".join(out)


@lru_cache(maxsize=65536)
def esc(value: str) -> str:
    """One data value, JIS-normalised and HL7-escaped (cached: names and places repeat a lot)."""
    return escape(to_jis(value))
