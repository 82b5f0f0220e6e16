"""Plugins inside the brains: what one must do to be admitted (:mod:`models.plugins.checks`),
and how a brain calls one safely (:mod:`models.plugins.guard`, :mod:`models.plugins.detectors`).

The registry (:mod:`models.registry`) says what plugins there are; the bindings
(:mod:`schemas.config.plugins`) say which one serves which series.
"""
