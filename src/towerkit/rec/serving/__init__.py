"""Serving and export: index, serve, export."""
