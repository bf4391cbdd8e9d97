"""The test suite, a package so that `tests.helpers` and `tests.fixtures` import by name from the repository root.

pyproject.toml puts the root on the import path (`pythonpath = ["."]`); nothing here edits `sys.path`.
"""
