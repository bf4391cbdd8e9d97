"""A small English grammar over the glosses: SUBJECT VERB [OBJECT] [ADVERBIAL].

Signs follow ASL-like gloss order and carry no articles or inflection; the English translation is realised
from the glosses (articles, agreement, and the tense that the adverbial implies: YESTERDAY -> past,
TOMORROW -> "will"), so the model has to produce fluent English, not just the list of signs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from slt.data.synth.lexicon import LEXICON, Lexeme
from slt.errors import CorpusConfigError

# Verbs that read naturally without an object ("My mother eats.").
INTRANSITIVE = frozenset({"EAT", "DRINK", "READ", "COOK"})


@dataclass(frozen=True)
class Sentence:
    """One sentence: the glosses that are signed and the English reference translation."""

    glosses: tuple[str, ...]
    text: str


def realise(glosses: Sequence[str]) -> str:
    """The English sentence for a gloss sequence of the grammar (e.g. MOTHER EAT APPLE YESTERDAY)."""
    lexemes = [_lookup(g) for g in glosses]
    roles = [lex.role for lex in lexemes]
    not_a_sentence = f"not a sentence of the grammar (SUBJECT VERB [OBJECT] [ADVERBIAL]): {' '.join(glosses)}"
    if len(lexemes) < 2 or roles[0] != "subject" or roles[1] != "verb":
        raise CorpusConfigError(not_a_sentence)
    subject, verb, rest = lexemes[0], lexemes[1], lexemes[2:]
    obj = next((lex for lex in rest if lex.role == "object"), None)
    adverbial = next((lex for lex in rest if lex.role == "adverbial"), None)
    expected = [lex for lex in (obj, adverbial) if lex is not None]
    if rest != expected:
        raise CorpusConfigError(not_a_sentence)
    tense = adverbial.forms[1] if adverbial else "present"
    base, third, past = verb.forms
    if tense == "past":
        verb_text = past
    elif tense == "future":
        verb_text = f"will {base}"
    else:
        verb_text = third if subject.forms[1] == "3s" else base
    words = [subject.forms[0], verb_text]
    if obj:
        words.append(obj.forms[0])
    if adverbial:
        words.append(adverbial.forms[0])
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _lookup(gloss: str) -> Lexeme:
    if gloss not in LEXICON:
        raise CorpusConfigError(f"unknown gloss {gloss!r}; known glosses: {', '.join(LEXICON)}")
    return LEXICON[gloss]


class Grammar:
    """All sentences that a vocabulary allows, with uniform sampling between a minimum and maximum length."""

    def __init__(self, vocabulary: Iterable[str], min_words: int = 2, max_words: int = 4):
        if not 2 <= min_words <= max_words <= 4:
            raise CorpusConfigError(
                f"sentence length must satisfy 2 <= min_words <= max_words <= 4, got {min_words}..{max_words}")
        self.vocabulary = tuple(dict.fromkeys(vocabulary))
        lexemes = [_lookup(g) for g in self.vocabulary]
        by_role = {role: [lex for lex in lexemes if lex.role == role]
                   for role in ("subject", "verb", "object", "adverbial")}
        if not by_role["subject"] or not by_role["verb"]:
            raise CorpusConfigError("the vocabulary needs at least one subject and one verb")
        vocab = set(self.vocabulary)
        sentences: list[Sentence] = []
        for subject, verb in itertools.product(by_role["subject"], by_role["verb"]):
            objects: list[str | None] = [g for g in sorted(verb.objects) if g in vocab]
            if verb.gloss in INTRANSITIVE:
                objects.append(None)
            for obj, adverbial in itertools.product(objects, [None, *by_role["adverbial"]]):
                glosses = tuple(g for g in (subject.gloss, verb.gloss, obj, adverbial and adverbial.gloss) if g)
                if min_words <= len(glosses) <= max_words:
                    sentences.append(Sentence(glosses, realise(glosses)))
        if not sentences:
            raise CorpusConfigError(f"the vocabulary makes no sentence of {min_words}..{max_words} signs")
        self.sentences: tuple[Sentence, ...] = tuple(sentences)

    def __len__(self) -> int:
        return len(self.sentences)

    def sample(self, rng: np.random.Generator, n: int, pool: Sequence[Sentence] | None = None) -> list[Sentence]:
        """`n` sentences drawn uniformly with replacement from `pool` (default: every sentence)."""
        pool = self.sentences if pool is None else pool
        return [pool[i] for i in rng.integers(0, len(pool), size=n)]
