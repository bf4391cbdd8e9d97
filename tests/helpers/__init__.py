"""Plain helpers shared by the tests (no fixtures: those live in tests/fixtures and are registered in conftest.py).

- `tests.helpers.video`: real test videos written with OpenCV (astronaut face, noise, levels) and frame readers.
- `tests.helpers.features`: tiny learnable feature corpora, tiny encoder checkpoints and text decoders for training.
- `tests.helpers.predictions`: synthetic prediction sets (healthy, collapsed) and JSONL read/write.
- `tests.helpers.synth`: the signer crop and colour statistics the synth-corpus tests check renders with.
- `tests.helpers.app`: launching the real app (in-process or as a subprocess) and its test settings.
- `tests.helpers.process`: the repository root and the environment for `python -m ...` subprocesses.
"""
