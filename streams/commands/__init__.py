"""The project's CLI verbs; importing this package registers the ``@app.command`` ones."""

from streams.commands import outcomes, simulate, tail

__all__ = ["outcomes", "simulate", "tail"]
