"""Shared test settings: headless plots, and no model hub (as in CI)."""

import os

# Set before any test module imports matplotlib or huggingface_hub.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
