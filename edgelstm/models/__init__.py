"""Models (torch). Build them by name with :func:`create_model`."""
from edgelstm.models.registry import create_model, model_names, register_model

__all__ = ["create_model", "model_names", "register_model"]
