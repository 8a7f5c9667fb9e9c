"""vlir: build the VLIR corpus of region-grounded visual reasoning chains, and train VLM-R3-style
models on it. ``import vlir`` is light: no torch, no transformers."""

__version__ = "0.1.0"
