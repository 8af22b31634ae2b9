"""Tests of the prediction service (a package, so its conftest does not shadow the root one)."""
