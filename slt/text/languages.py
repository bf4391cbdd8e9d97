"""FLORES-200 target-language codes and their validation.

The list comes from the SONAR text decoder's own asset card (shipped inside sonar-space), so it is exactly the set
of `__{lang}__` tokens the real NLLB tokenizer knows.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from importlib import resources

import yaml

from slt.errors import UnknownLanguageError

_CARD_PACKAGE = "sonar.cards"
_CARD_FILE = "text_sonar_basic_decoder.yaml"


def _read_card_languages() -> tuple[str, ...]:
    # Read the YAML straight from the package: importing sonar/fairseq2 here would make every
    # `import slt.text` pay fairseq2's start-up cost.
    text = resources.files(_CARD_PACKAGE).joinpath(_CARD_FILE).read_text(encoding="utf-8")
    card = yaml.safe_load(text)
    langs = card["tokenizer_config"]["_set_"]["langs"]
    return tuple(dict.fromkeys(str(lang) for lang in langs))


FLORES200_LANGUAGES: tuple[str, ...] = _read_card_languages()
"""Every FLORES-200 code the SONAR text decoder supports (eng_Latn, fra_Latn, zho_Hans, ...)."""


def close_matches(code: str, known: Iterable[str], limit: int = 5) -> list[str]:
    """Known codes that look like `code`: case-insensitive prefix hits first, then difflib's similar strings."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    needle = code.strip().lower()
    hits: list[str] = []
    if needle in lowered:
        hits.append(lowered[needle])  # right code, wrong case ("eng_latn")
    # "fra" or "fra_" should point at fra_Latn: match on the ISO 639-3 part.
    hits += [k for k in known if needle and k.lower().split("_")[0] == needle.split("_")[0]]
    by_lower = difflib.get_close_matches(needle, list(lowered), n=limit, cutoff=0.5)
    hits += [lowered[m] for m in by_lower]
    return list(dict.fromkeys(hits))[:limit]


def validate_languages(codes: Iterable[str], supported: Iterable[str] | None = None) -> list[str]:
    """Check target language codes; return them de-duplicated in first-seen order.

    `supported` is the decoder tokenizer's language list (a tiny local decoder knows only a few); by default the
    full FLORES-200 list. An unknown code raises :class:`UnknownLanguageError` that names close matches.
    """
    if isinstance(codes, str):
        codes = [codes]  # a bare string would otherwise be split into letters
    known = list(supported) if supported is not None else list(FLORES200_LANGUAGES)
    known_set = set(known)
    result: list[str] = []
    for code in codes:
        if not isinstance(code, str):
            raise UnknownLanguageError(f"language codes must be strings like 'eng_Latn', got {code!r}")
        if code not in known_set:
            suggestions = close_matches(code, known)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
            raise UnknownLanguageError(
                f"unknown target language '{code}': expected a FLORES-200 code (ISO 639-3 + script, e.g. "
                f"'eng_Latn') among the {len(known)} this decoder supports.{hint}"
            )
        if code not in result:
            result.append(code)
    if not result:
        raise UnknownLanguageError("no target language given; pass at least one FLORES-200 code such as 'eng_Latn'")
    return result
