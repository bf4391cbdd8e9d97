"""Synthetic signing corpus: a real face on a drawn signer performs sentences of a small English grammar.

Public API: :func:`generate_corpus`, :func:`plan_corpus`, :class:`Grammar`, :class:`DomainSpec` with the
``PRESETS`` "studio" and "instructional", :func:`render_sentence` (frames one at a time).
"""

from slt.data.synth.corpus import SPLITS, ClipPlan, generate_corpus, plan_corpus, write_clip
from slt.data.synth.domains import PRESETS, DomainSpec, get_domain
from slt.data.synth.grammar import Grammar, Sentence, realise
from slt.data.synth.lexicon import ALL_GLOSSES, Gesture, gesture_for
from slt.data.synth.render import Performance, plan_performance, render_performance, render_sentence

__all__ = [
    "ALL_GLOSSES", "ClipPlan", "DomainSpec", "Gesture", "Grammar", "PRESETS", "Performance", "SPLITS", "Sentence",
    "generate_corpus", "gesture_for", "get_domain", "plan_corpus", "plan_performance", "realise",
    "render_performance", "render_sentence", "write_clip",
]
