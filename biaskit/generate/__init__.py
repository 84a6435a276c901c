"""Generation: N seeded resamples per prompt per model, through generator adapters.

Examples
--------
>>> from biaskit.generate import generate
>>> images = generate("prompts/system_card.yaml",
...                   {"candidate": "openai:gpt-image-1", "baseline": "openai:dall-e-3"},
...                   out="runs/card", samples=20, seed=0)      # doctest: +SKIP
"""

from biaskit.generate.base import BaseGenerator, Generator, Request, Result
from biaskit.generate.seeds import MAX_SEED, derive_seed
from biaskit.generate.specs import make_generator
from biaskit.generate.runner import generate, write_run_config

__all__ = ["BaseGenerator", "Generator", "MAX_SEED", "Request", "Result", "derive_seed",
           "generate", "make_generator", "write_run_config"]
