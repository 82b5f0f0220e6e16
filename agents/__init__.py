"""Thin Faust agents: read a topic through :mod:`agents.edge`, call :mod:`models`, publish."""
