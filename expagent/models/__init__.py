"""Model layer: one small interface (``base.Model``) and its implementations.

- ``litellm``: any provider/model string litellm knows (``api_base`` for OpenAI-compatible servers);
- ``scripted:<file>``: replies read in order from a YAML/JSON file;
- ``replay:<trajectory>``: the model replies recorded in a trajectory, re-issued in order;
- ``litellm+scripted:<file>`` / ``litellm+replay:<trajectory>``: the same replies served through litellm's own
  call path (a custom provider).
"""

from expagent.models.base import Model, ModelReply, ToolCall
from expagent.models.factory import make_model

__all__ = ["Model", "ModelReply", "ToolCall", "make_model"]
