"""Plugins in the runtime: registering them from the environment (:mod:`.loading`) and
admitting them (:mod:`.admission`: a static scan of their code, then their conformance
suite)."""
