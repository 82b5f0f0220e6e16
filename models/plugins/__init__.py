"""What a plugin must do to be admitted: the conformance suite (:mod:`models.plugins.checks`)."""
