"""zoo: vision, audio, text and concept models trained on real data."""
