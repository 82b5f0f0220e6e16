"""Running plugins inside the brains: guarded calls, quarantine, and detectors by binding.

The registry (:mod:`models.registry`) says what plugins there are; the bindings
(:mod:`schemas.config.plugins`) say which one serves which series. Here is what a brain
needs to call one safely.
"""
