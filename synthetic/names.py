"""Person names: kanji, katakana and romaji that belong together.

Surnames and given names are drawn as whole table rows (kanji + reading), never kanji and kana
separately; the romaji is derived from the reading with passport-style Hepburn (no macrons: サトウ → Sato,
オオノ → Ono), which is what Japanese hospitals print for foreign-facing documents.
"""

from __future__ import annotations

import random
from functools import cache

from synthetic import tables
from synthetic.model import PersonName
from synthetic.rng import Weighted

_BASE = {
    "ア": "a",
    "イ": "i",
    "ウ": "u",
    "エ": "e",
    "オ": "o",
    "カ": "ka",
    "キ": "ki",
    "ク": "ku",
    "ケ": "ke",
    "コ": "ko",
    "サ": "sa",
    "シ": "shi",
    "ス": "su",
    "セ": "se",
    "ソ": "so",
    "タ": "ta",
    "チ": "chi",
    "ツ": "tsu",
    "テ": "te",
    "ト": "to",
    "ナ": "na",
    "ニ": "ni",
    "ヌ": "nu",
    "ネ": "ne",
    "ノ": "no",
    "ハ": "ha",
    "ヒ": "hi",
    "フ": "fu",
    "ヘ": "he",
    "ホ": "ho",
    "マ": "ma",
    "ミ": "mi",
    "ム": "mu",
    "メ": "me",
    "モ": "mo",
    "ヤ": "ya",
    "ユ": "yu",
    "ヨ": "yo",
    "ラ": "ra",
    "リ": "ri",
    "ル": "ru",
    "レ": "re",
    "ロ": "ro",
    "ワ": "wa",
    "ヰ": "i",
    "ヱ": "e",
    "ヲ": "o",
    "ン": "n",
    "ガ": "ga",
    "ギ": "gi",
    "グ": "gu",
    "ゲ": "ge",
    "ゴ": "go",
    "ザ": "za",
    "ジ": "ji",
    "ズ": "zu",
    "ゼ": "ze",
    "ゾ": "zo",
    "ダ": "da",
    "ヂ": "ji",
    "ヅ": "zu",
    "デ": "de",
    "ド": "do",
    "バ": "ba",
    "ビ": "bi",
    "ブ": "bu",
    "ベ": "be",
    "ボ": "bo",
    "パ": "pa",
    "ピ": "pi",
    "プ": "pu",
    "ペ": "pe",
    "ポ": "po",
    "ヴ": "vu",
    "ァ": "a",
    "ィ": "i",
    "ゥ": "u",
    "ェ": "e",
    "ォ": "o",
}
_YOON = {"ャ": "a", "ュ": "u", "ョ": "o"}


def kana_to_romaji(kana: str) -> str:
    """Passport Hepburn of a katakana reading, capitalised (``ヤマダ`` → ``Yamada``)."""
    out: list[str] = []
    i = 0
    double_next = False
    while i < len(kana):
        ch = kana[i]
        if ch == "ッ":
            double_next = True
            i += 1
            continue
        if ch == "ー" or ch == " ":
            i += 1
            continue
        syl = _BASE.get(ch)
        if syl is None:
            raise ValueError(f"cannot romanise {ch!r} in {kana!r}")
        nxt = kana[i + 1] if i + 1 < len(kana) else ""
        if nxt in _YOON and syl.endswith("i") and ch != "イ":
            stem = syl[:-1]
            syl = stem + _YOON[nxt] if stem in ("sh", "ch", "j") else stem + "y" + _YOON[nxt]
            i += 1
        if double_next:
            syl = ("t" + syl) if syl.startswith("ch") else syl[0] + syl
            double_next = False
        out.append(syl)
        i += 1
    text = "".join(out)
    # ン before b/m/p is written m; long vowels ou/oo/uu collapse (passport style, no macrons).
    for a, b in (("nb", "mb"), ("nm", "mm"), ("np", "mp")):
        text = text.replace(a, b)
    for a, b in (("ou", "o"), ("oo", "o"), ("uu", "u")):
        text = text.replace(a, b)
    return text[:1].upper() + text[1:]


_ERAS = (1920, 1930, 1940, 1950, 1960, 1970, 1980, 1990, 2000, 2010, 2020)


def era_of(birth_year: int) -> int:
    decade = birth_year // 10 * 10
    return min(max(decade, _ERAS[0]), _ERAS[-1])


class NameDrawer:
    """Draws consistent names; surnames by national frequency, given names by sex and birth decade."""

    def __init__(self) -> None:
        plain = tables.surnames()
        self._surnames = Weighted(plain, [s.weight for s in plain])
        variants = tables.surname_variants()
        self._variants = Weighted(variants, [s.weight for s in variants])
        by_key: dict[tuple[str, int], list[tables.GivenName]] = {}
        for g in tables.given_names():
            by_key.setdefault((g.sex, g.era), []).append(g)
        self._given = {k: Weighted(v, [g.weight for g in v]) for k, v in by_key.items()}

    def surname(self, rng: random.Random, variant_share: float) -> tables.Surname:
        if variant_share > 0 and rng.random() < variant_share:
            return self._variants.pick(rng)
        return self._surnames.pick(rng)

    def person(self, rng: random.Random, sex: str, birth_year: int, variant_share: float = 0.0) -> PersonName:
        family = self.surname(rng, variant_share)
        era = era_of(birth_year)
        pool = self._given.get((sex, era))
        if pool is None:
            raise ValueError(f"no given names for sex={sex} era={era}")
        given = pool.pick(rng)
        return PersonName(
            family=family.normalized,
            given=given.kanji,
            family_kana=family.kana,
            given_kana=given.kana,
            family_romaji=kana_to_romaji(family.kana),
            given_romaji=kana_to_romaji(given.kana),
            family_variant=family.kanji if family.kanji != family.normalized else "",
        )


@cache
def drawer() -> NameDrawer:
    return NameDrawer()
