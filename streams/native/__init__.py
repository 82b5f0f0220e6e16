"""The compiled build of the models' kernels (:mod:`models.native`): ``autopilot native``."""
