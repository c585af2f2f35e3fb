"""The wire contract (docs/api.md) as pydantic models, shared by client and server.

No Qt and no HTTP here: only the shapes of what travels on the wire, their exact field names
(camelCase for jobs, snake_case for datasets and models) and tolerant parsing (unknown fields are
ignored, unknown enum values become `unknown`).
"""

from training_studio.contract.datasets_ext import *  # noqa: F401,F403
from training_studio.contract.datasets_ext import __all__ as _datasets_ext_names
from training_studio.contract.models import *  # noqa: F401,F403
from training_studio.contract.models import __all__ as _model_names
from training_studio.contract.system import *  # noqa: F401,F403
from training_studio.contract.system import __all__ as _system_names
from training_studio.contract.templates import *  # noqa: F401,F403
from training_studio.contract.templates import __all__ as _template_names

__all__ = [*_model_names, *_system_names, *_template_names, *_datasets_ext_names]
