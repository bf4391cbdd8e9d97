"""A tiny WordNet in the Princeton database format that nltk's WordNetCorpusReader reads, so METEOR's synonym
stage runs for real in tests (the full corpus is not installable with pip and there is no internet here)."""

from __future__ import annotations

from pathlib import Path

_POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def write_tiny_wordnet(data_root: Path, synsets: list[tuple[str, list[str]]]) -> Path:
    """Write ``data_root/corpora/wordnet`` holding one synset per (pos, lemmas) entry; returns the wordnet dir.

    ``data_root`` works as an nltk data directory ($NLTK_DATA / ``nltk.data.path``).
    """
    root = data_root / "corpora" / "wordnet"
    root.mkdir(parents=True, exist_ok=True)
    (root / "lexnames").write_text("00 noun.Tops 1\n")
    (root / "index.sense").write_text("")
    data: dict[str, bytes] = {p: b"  tiny test WordNet\n" for p in _POS}  # lines starting with spaces: header
    index: dict[str, dict[str, list[int]]] = {p: {} for p in _POS}
    for pos, lemmas in synsets:
        offset = len(data[pos])
        words = " ".join(f"{lemma} 0" for lemma in lemmas)
        data[pos] += f"{offset:08d} 00 {pos} {len(lemmas):02x} {words} 000 | test synset  \n".encode()
        for lemma in lemmas:
            index[pos].setdefault(lemma, []).append(offset)
    for pos, name in _POS.items():
        (root / f"data.{name}").write_bytes(data[pos])
        lines = [f"{lemma} {pos} {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "  \n"
                 for lemma, offs in sorted(index[pos].items())]
        (root / f"index.{name}").write_text("".join(lines))
        (root / f"{name}.exc").write_text("")
    return root
