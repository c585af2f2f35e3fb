"""One shared `model_fields_set` per distinct set of field names, for the wire models the GUI holds by the
ten thousand (jobs in `JobListModel`, dataset files in `DatasetFilesModel`).

pydantic gives every validated model its own `__pydantic_fields_set__`, a set of the field names the
server sent: about 730 bytes a job or file, almost half of a DatasetFile's memory and 40% of a TrainingJob's
(issue 19: 14 MiB of the GUI holding 10,000 jobs and a 10,000-file dataset). Nearly all of them hold the
same names, so the models point theirs at one shared set per distinct content instead; equality,
`model_dump` (also with `exclude_unset`), `model_copy` (which copies the set) and `model_fields_set` give
what they gave before. The one thing a shared set changes: assigning a field on a held model
(`job.name = ...`) would add that name to every model sharing the set. The GUI never does that: it
replaces held models (new answers, `model_copy(update=...)`), and only the models' own storing code calls
this.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

__all__ = ["share_fields_set"]

_Model = TypeVar("_Model", bound=BaseModel)

# Distinct sets seen so far. Bounded: servers send a handful of field-name combinations; past the bound a
# model keeps its own set (correct, only bigger).
_MAX_SHARED = 256
_shared: dict[frozenset[str], set[str]] = {}
_shared_ids: set[int] = set()  # a model already pointing at a shared set costs one lookup (refreshes reuse them)


def share_fields_set(model: _Model) -> _Model:
    """Point `model`'s fields-set at the shared set with the same names; returns `model`."""
    own = model.__pydantic_fields_set__
    if id(own) in _shared_ids:
        return model
    key = frozenset(own)
    shared = _shared.get(key)
    if shared is None:
        if len(_shared) >= _MAX_SHARED:
            return model
        shared = _shared[key] = set(key)
        _shared_ids.add(id(shared))  # the shared sets live as long as the process: their ids stay theirs
    if shared is not own:
        object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model
