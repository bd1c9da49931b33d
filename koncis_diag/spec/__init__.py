"""The run instructions stage: what to collect and how to redact it.

``model`` declares the typed spec (items, connections, redaction settings); ``reader`` and
``items`` turn a YAML file into it with exact file:line:col errors, ``variables`` substitutes
``${name}``, ``values`` and ``env`` check single values; ``profiles`` are the built-in run
instructions; ``signing`` verifies who wrote a spec; ``authoring`` helps support write one.
The model is re-exported here: ``from koncis_diag.spec import Spec, load_spec``.
"""

from koncis_diag.spec.model import *  # noqa: F403 - the model is the package's API
from koncis_diag.spec.model import __all__ as __all__
