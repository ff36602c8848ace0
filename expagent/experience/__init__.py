"""The experience loop around a run.

Before: ``prepare_context`` retrieves memory (or abstains) and builds the repo map and extra tools.
After: the outcome comes from tests (``verify``), the run is distilled (``distill``) and remembered
(``remember``), and the usefulness of what was injected is updated. ``consolidate`` and ``prune``
maintain lessons, only when asked.
"""

from expagent.experience.context import RunContext, open_memory, prepare_context
from expagent.experience.remember import make_distiller, remember_run
from expagent.experience.verify import make_verifier, record_outcome, verdict_from_grade

__all__ = ["RunContext", "open_memory", "prepare_context", "remember_run", "make_distiller", "make_verifier", "record_outcome",
           "verdict_from_grade"]
