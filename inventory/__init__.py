"""Stockpile: accountability for state weapons and ammunition."""

from .app import create_app

__all__ = ["create_app"]
