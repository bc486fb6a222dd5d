"""Placeholder: `towerkit demo` tours each domain's quick recipe (being written now)."""


def demo() -> None:
    """Run every domain's quick recipe."""
