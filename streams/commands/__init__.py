"""The project's CLI verbs, found by Faust's autodiscovery."""
