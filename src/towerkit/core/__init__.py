"""Shared by every domain; knows nothing of any domain."""
