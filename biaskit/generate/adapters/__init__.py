"""Generator adapters: image folder, OpenAI Images API, diffusers, Python callable, earlier run."""

from biaskit.generate.adapters.callable import CallableGenerator
from biaskit.generate.adapters.folder import FolderGenerator
from biaskit.generate.adapters.run import RunGenerator

__all__ = ["CallableGenerator", "FolderGenerator", "RunGenerator",
           "OpenAIGenerator", "DiffusersGenerator"]


def __getattr__(name):
    # The SDK-backed adapters import their (optional, heavy) SDKs only when asked for.
    if name == "OpenAIGenerator":
        from biaskit.generate.adapters.openai import OpenAIGenerator
        return OpenAIGenerator
    if name == "DiffusersGenerator":
        from biaskit.generate.adapters.diffusers import DiffusersGenerator
        return DiffusersGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
