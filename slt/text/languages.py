"""FLORES-200 target-language codes and their validation.

`flores200_languages.txt` (beside this file) lists the codes in the order of the SONAR text decoder's own asset
card in sonar-space: that order fixes the ids of the `__{lang}__` tokens, so the transformers backend, which has
no sonar-space to read it from, must keep it. tests/test_hf_decoder.py checks it against the card.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from slt.errors import UnknownLanguageError

_LANGUAGE_FILE = Path(__file__).with_name("flores200_languages.txt")


def _read_languages() -> tuple[str, ...]:
    lines = _LANGUAGE_FILE.read_text(encoding="utf-8").split()
    return tuple(dict.fromkeys(line.strip() for line in lines if line.strip()))


FLORES200_LANGUAGES: tuple[str, ...] = _read_languages()
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


def validate_languages(codes: Iterable[str], supported: Iterable[str] | None = None,
                       decoder: str | None = None) -> list[str]:
    """Check target language codes; return them de-duplicated in first-seen order.

    `supported` is the decoder tokenizer's language list (a tiny local decoder knows only a few); by default the
    full FLORES-200 list. `decoder` names that decoder in messages. A real FLORES-200 code the decoder lacks is
    reported as such, with the decoder's languages (it is not "unknown"); any other code raises
    :class:`UnknownLanguageError` that names close matches.
    """
    if isinstance(codes, str):
        codes = [codes]  # a bare string would otherwise be split into letters
    known = list(supported) if supported is not None else list(FLORES200_LANGUAGES)
    known_set = set(known)
    result: list[str] = []
    for code in codes:
        if not isinstance(code, str):
            raise UnknownLanguageError(f"language codes must be strings like 'eng_Latn', got {code!r}")
        if code not in known_set and code in FLORES200_LANGUAGES:
            named = f"the decoder {decoder}" if decoder else "this decoder"
            listed = ", ".join(known[:20]) + (f" ... ({len(known)} in all)" if len(known) > 20 else "")
            raise UnknownLanguageError(f"{named} does not have {code}; it has: {listed}")
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
