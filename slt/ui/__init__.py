"""SLT Studio's Gradio UI: one module per tab, plus settings, limits, app state and the training job manager.

Entry point: ``python app.py`` (see :mod:`slt.ui.app`).
"""
