"""Domain presets: who signs, how fast, in front of what, with which vocabulary and camera.

"studio" (domain A) and "instructional" (domain B) share 13 glosses (59 % of A's 22); B adds 11 of its
own. Shared glosses keep their gesture, but B renders hands with a blue-shifted colour tint, signs
~30 % faster, in front of real textures, with camera noise, so a model trained on A transfers only partly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from slt.errors import CorpusConfigError

STUDIO_VOCAB = tuple(
    "I YOU MOTHER TEACHER FRIEND EAT DRINK READ LIKE WANT SEE "
    "APPLE BREAD WATER TEA COFFEE BOOK LETTER TODAY YESTERDAY TOMORROW NOW".split()
)
INSTRUCTIONAL_VOCAB = tuple(
    "I YOU TEACHER STUDENT DOCTOR WE EAT READ WANT LIKE COOK OPEN WASH "
    "APPLE BREAD WATER BOOK SOUP DOOR WINDOW CAR TODAY TOMORROW AGAIN".split()
)


@dataclass(frozen=True)
class DomainSpec:
    """Everything that makes one domain look the way it does. Sizes in pixels, times in frames at `fps`."""

    name: str
    vocabulary: tuple[str, ...]
    signer: str = "astronaut"
    frame_size: tuple[int, int] = (256, 256)  # width, height
    fps: float = 25.0
    face_width: int = 56
    face_jitter: float = 6.0  # max shift of the face centre between clips, pixels
    speed: float = 1.0  # signs per base duration; 1.3 = 30 % faster
    speed_jitter: float = 0.1  # relative random change of each sign's duration
    rest_frames: tuple[int, int] = (5, 8)  # hands at rest before the first / after the last sign
    shirt_colours: tuple[tuple[int, int, int], ...] = ((30, 40, 90), (45, 45, 50))
    background: str = "plain"  # "plain" or "texture"
    background_colours: tuple[tuple[int, int, int], ...] = ((70, 80, 95), (95, 95, 100))
    textures: tuple[str, ...] = ("brick", "grass", "gravel")
    hand_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gain on gesture colours
    hand_scale: float = 1.0
    noise_sigma: float = 0.0  # camera noise, grey levels
    brightness_jitter: float = 0.0  # per-frame global gain change (flicker)
    shake: float = 0.0  # per-frame camera shake, pixels
    min_words: int = 2
    max_words: int = 4

    def replace(self, **changes) -> DomainSpec:
        """A copy with some settings changed (checked)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CorpusConfigError(f"unknown domain setting(s): {', '.join(sorted(unknown))}")
        spec = dataclasses.replace(self, **changes)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise CorpusConfigError on settings that cannot render a usable corpus."""
        w, h = self.frame_size
        if not (96 <= w <= 1024 and 96 <= h <= 1024):
            raise CorpusConfigError(f"frame_size must be within 96..1024 pixels per side, got {w}x{h}")
        if not 40 <= self.face_width <= min(w, h) // 3:
            raise CorpusConfigError(
                f"face_width must be in 40..{min(w, h) // 3} px for dlib to find it, got {self.face_width}")
        if not 0.25 <= self.speed <= 4.0:
            raise CorpusConfigError(f"speed must be in 0.25..4, got {self.speed}")
        if not 5 <= self.fps <= 60:
            raise CorpusConfigError(f"fps must be in 5..60, got {self.fps}")
        if self.background not in ("plain", "texture"):
            raise CorpusConfigError(f"background must be 'plain' or 'texture', got {self.background!r}")
        if self.noise_sigma < 0 or self.brightness_jitter < 0 or self.shake < 0:
            raise CorpusConfigError("noise_sigma, brightness_jitter and shake must be >= 0")


PRESETS: dict[str, DomainSpec] = {
    "studio": DomainSpec(name="studio", vocabulary=STUDIO_VOCAB),
    "instructional": DomainSpec(
        name="instructional",
        vocabulary=INSTRUCTIONAL_VOCAB,
        signer="astronaut_alt",
        face_width=60,
        speed=1.3,
        rest_frames=(3, 6),
        shirt_colours=((110, 30, 40), (40, 90, 60)),
        background="texture",
        hand_tint=(0.6, 0.9, 1.4),
        hand_scale=1.0,
        noise_sigma=6.0,
        brightness_jitter=0.04,
        shake=1.5,
    ),
}


def get_domain(name: str, **overrides) -> DomainSpec:
    """The preset `name` ("studio" or "instructional"), optionally with some settings overridden."""
    if name not in PRESETS:
        raise CorpusConfigError(f"unknown domain {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
