"""The TOML configuration contracts, each parsed by :mod:`schemas.config.toml`.

:mod:`~schemas.config.regions` (regions, latencies, residency), :mod:`~schemas.config.prices`
(the price table), :mod:`~schemas.config.budgets` and :mod:`~schemas.config.actuation` (the
actuator's mapping file). The bundled defaults are in ``streams/config/``.

:mod:`~schemas.config.cache` says where fetched and built artefacts are kept (environment
variables, no file).
"""
