"""Interaction store: seed-db, export."""
