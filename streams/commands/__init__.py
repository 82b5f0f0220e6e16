"""The project's CLI verbs; importing this package registers the ``@app.command`` ones."""

from streams.commands import simulate, tail

__all__ = ["simulate", "tail"]
