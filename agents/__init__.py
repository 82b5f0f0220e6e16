"""Thin Faust agents, one per file: read a topic through :mod:`agents.runtime.edge`, call
:mod:`models`, publish.

Importing this package registers nothing; :mod:`agents.all` registers every agent the
worker runs (the ``autopilot`` command imports it), so a tool or a test can import one
agent, or :mod:`agents.compat.offsets` alone, without the others.
"""
