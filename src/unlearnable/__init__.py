"""unlearnable: protect image datasets from being learned, even by pretrained models."""

__version__ = "0.1.0"
