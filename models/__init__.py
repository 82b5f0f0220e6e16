"""The brain: learners and policies, pure and synchronous.

Importing it loads the kernels from their compiled build, if there is one for their
sources (:mod:`models.native`).
"""

from models.native import install

install()
