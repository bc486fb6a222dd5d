"""Recommendation: two-tower retrieval from an app's interaction store, and sequential models."""
