"""Plugins for the admission tests, one package each (admission scans a plugin's package).

Each defines its :class:`models.registry.Entry` at module level without registering it:
importing one registers nothing; ``AUTOPILOT_PLUGIN_MODULES`` or
:func:`models.registry.load_plugins` does.
"""
