"""The wire contract (docs/api.md) as pydantic models, shared by client and server.

No Qt and no HTTP here: only the shapes of what travels on the wire, their exact field names
(camelCase for jobs, snake_case for datasets and models) and tolerant parsing (unknown fields are
ignored, unknown enum values become `unknown`).
"""

from training_studio.contract.models import *  # noqa: F401,F403
from training_studio.contract.models import __all__  # noqa: F401
