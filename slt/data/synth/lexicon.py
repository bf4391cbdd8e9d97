"""The signs: one gloss per English lexeme, each with its own gesture.

A gesture is what makes a sign recognisable after the downstream pipeline has cropped the signer to 224x224
and averaged a random SignHiera's features over space: so signs differ first in hand colours (palm / back,
which alternate as the hand turns), then in hand shape, size, motion over time and where the hand is
relative to the face. Gestures are assigned from the gloss's fixed position in ``ALL_GLOSSES``, so a gloss
shared by two domains keeps the same gesture in both (a domain may still *render* it differently).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slt.errors import CorpusConfigError

Role = Literal["subject", "verb", "object", "adverbial"]

# Well separated hues in RGB; none is close to skin, shirt or the plain studio background.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),  # red
    (255, 140, 0),  # orange
    (250, 230, 20),  # yellow
    (120, 230, 30),  # lime
    (0, 150, 60),  # green
    (0, 220, 230),  # cyan
    (30, 60, 230),  # blue
    (140, 40, 210),  # purple
    (240, 40, 200),  # magenta
    (250, 250, 250),  # white
)
HAND_SHAPES = ("fist", "flat", "point", "vee", "open", "claw")
MOTIONS = ("circle", "updown", "sideways", "push", "twist", "tap")
# Anchor points in face widths relative to the face centre (x right, y down) and the direction the fingers
# point there (degrees clockwise from up). All lie inside the pipeline's signer box (x in [-2, 2],
# y in [-1.5, 3.5]) and keep the hand off the eyes and nose, so dlib keeps finding the face.
ANCHORS: dict[str, tuple[float, float, float]] = {
    "temple": (-1.05, -0.3, 0.0),
    "chin": (0.0, 1.0, 90.0),
    "chest": (0.0, 1.9, 0.0),
    "belly": (0.0, 2.7, 90.0),
    "left": (-1.3, 1.6, -30.0),
    "right": (1.3, 1.6, 30.0),
}


@dataclass(frozen=True)
class Gesture:
    """How one sign is performed. Sizes are in face widths, durations in frames at 25 fps and speed 1."""

    palm_rgb: tuple[int, int, int]
    back_rgb: tuple[int, int, int]
    shape: str
    size: float
    motion: str
    anchor: str
    two_handed: bool
    base_frames: int


@dataclass(frozen=True)
class Lexeme:
    """A gloss with its grammatical role and English forms."""

    gloss: str
    role: Role
    # subject: (pronoun/noun phrase, "1s"|"2s"|"3s"|"3p"); verb: (base, 3rd person -s form, past);
    # object: noun phrase; adverbial: (phrase, tense "present"|"past"|"future")
    forms: tuple[str, ...]
    # verbs only: which object glosses make sense (empty = the verb takes no object)
    objects: frozenset[str] = frozenset()


def _s(gloss: str, phrase: str, person: str) -> Lexeme:
    return Lexeme(gloss, "subject", (phrase, person))


def _v(gloss: str, base: str, third: str, past: str, objects: str) -> Lexeme:
    return Lexeme(gloss, "verb", (base, third, past), frozenset(objects.split()))


def _o(gloss: str, phrase: str) -> Lexeme:
    return Lexeme(gloss, "object", (phrase,))


def _a(gloss: str, phrase: str, tense: str) -> Lexeme:
    return Lexeme(gloss, "adverbial", (phrase, tense))


FOOD = "APPLE BREAD SOUP"
DRINKS = "WATER TEA COFFEE"
THINGS = "BOOK LETTER DOOR WINDOW CAR"

LEXICON: dict[str, Lexeme] = {
    lex.gloss: lex
    for lex in (
        _s("I", "I", "1s"),
        _s("YOU", "you", "2s"),
        _s("MOTHER", "my mother", "3s"),
        _s("TEACHER", "the teacher", "3s"),
        _s("FRIEND", "my friend", "3s"),
        _s("STUDENT", "the student", "3s"),
        _s("DOCTOR", "the doctor", "3s"),
        _s("WE", "we", "3p"),
        _v("EAT", "eat", "eats", "ate", FOOD),
        _v("DRINK", "drink", "drinks", "drank", DRINKS),
        _v("READ", "read", "reads", "read", "BOOK LETTER"),
        _v("LIKE", "like", "likes", "liked", f"{FOOD} {DRINKS} BOOK CAR"),
        _v("WANT", "want", "wants", "wanted", f"{FOOD} {DRINKS} BOOK CAR"),
        _v("SEE", "see", "sees", "saw", f"{THINGS} APPLE"),
        _v("COOK", "cook", "cooks", "cooked", "SOUP BREAD"),
        _v("OPEN", "open", "opens", "opened", "DOOR WINDOW BOOK LETTER"),
        _v("WASH", "wash", "washes", "washed", "CAR WINDOW DOOR APPLE"),
        _o("APPLE", "an apple"),
        _o("BREAD", "bread"),
        _o("SOUP", "soup"),
        _o("WATER", "water"),
        _o("TEA", "tea"),
        _o("COFFEE", "coffee"),
        _o("BOOK", "a book"),
        _o("LETTER", "a letter"),
        _o("DOOR", "the door"),
        _o("WINDOW", "the window"),
        _o("CAR", "the car"),
        _a("TODAY", "today", "present"),
        _a("NOW", "now", "present"),
        _a("YESTERDAY", "yesterday", "past"),
        _a("TOMORROW", "tomorrow", "future"),
        _a("AGAIN", "again", "present"),
    )
}
ALL_GLOSSES: tuple[str, ...] = tuple(LEXICON)


def gesture_for(gloss: str) -> Gesture:
    """The gesture of `gloss`, fixed by its index in ``ALL_GLOSSES`` (so it is the same in every domain).

    The palm/back colour pair alone is unique for up to 40 glosses (palm = k mod 10, back = palm + a
    per-decade offset that is never 0 mod 10); shape, motion, anchor and size vary on other strides so
    that glosses sharing a colour still differ in several other ways.
    """
    if gloss not in LEXICON:
        raise CorpusConfigError(f"unknown gloss {gloss!r}; known glosses: {', '.join(ALL_GLOSSES)}")
    k = ALL_GLOSSES.index(gloss)
    palm = k % len(PALETTE)
    back = (palm + (5, 3, 7, 2)[k // len(PALETTE)]) % len(PALETTE)
    anchors = tuple(ANCHORS)
    return Gesture(
        palm_rgb=PALETTE[palm],
        back_rgb=PALETTE[back],
        shape=HAND_SHAPES[(k + k // 10) % len(HAND_SHAPES)],
        size=(0.55, 0.75, 0.95)[(k * 2 + k // 10) % 3],
        motion=MOTIONS[(k // 2 + k) % len(MOTIONS)],
        anchor=anchors[(k * 5 + k // 10) % len(anchors)],
        two_handed=(k % 3 == 1),
        base_frames=(15, 17, 19)[(k + k // 5) % 3],
    )
