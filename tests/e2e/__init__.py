"""Helpers for end-to-end tests that run real processes (see botproc.py)."""
