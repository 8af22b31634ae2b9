"""Census Income (UCI Adult) pipeline: verified data to a gated, served model."""

__version__ = "0.1.0"
