"""Local text-to-image pipelines from ``diffusers``, by hub id or as an object."""

from __future__ import annotations

import threading
from typing import Any, Sequence

from biaskit.generate.base import Request, Result, describe_exception

DIFFUSERS_MISSING = "the diffusers adapter needs diffusers: pip install 'biaskit[diffusers]'"
FLAGGED = "the pipeline's safety checker flagged the image as NSFW"
BATCH_FAILED = "pipeline call failed for the batch: {reason}"
LOAD_FAILED = "diffusers:{hub_id}: cannot load the pipeline: {reason}"


class DiffusersGenerator:
    """Seeded, batched generation with any diffusers text-to-image pipeline.

    Parameters
    ----------
    pipeline : str or object
        A hub id / local path for ``DiffusionPipeline.from_pretrained`` (loaded on
        first use), or a pipeline object called as
        ``pipeline(prompt=[...], generator=[...], **call_kwargs)`` returning
        an object with ``.images``.
    batch_size : int
        Requests per pipeline call.
    device : str, optional
        Default ``cuda`` when available, else ``cpu``.
    dtype : torch.dtype, optional
        Default float16 on CUDA, float32 on CPU (used when loading by id).
    call_kwargs
        Passed to every call, e.g. ``num_inference_steps=30``.

    Notes
    -----
    Every sample gets its own ``torch.Generator`` seeded with its recorded seed,
    so a sample's image does not depend on its batch-mates.  When the pipeline
    reports ``nsfw_content_detected``, the flagged samples are ``refused``.

    Examples
    --------
    >>> gen = DiffusersGenerator("stabilityai/sdxl-turbo", batch_size=4,
    ...                          num_inference_steps=1, guidance_scale=0.0)  # doctest: +SKIP
    """

    max_concurrency = 1  # one pipeline, one device

    def __init__(self, pipeline: Any, *, batch_size: int = 4, device: str | None = None,
                 dtype: Any = None, **call_kwargs: Any):
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a core dependency
            raise RuntimeError(DIFFUSERS_MISSING) from None
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or (torch.float16 if self.device.startswith("cuda") else torch.float32)
        self.batch_size = int(batch_size)
        self.call_kwargs = call_kwargs
        self._source = pipeline
        self._pipeline = None if isinstance(pipeline, str) else pipeline
        self._loading = threading.Lock()

    @property
    def pipeline(self) -> Any:
        """The pipeline, loaded from the hub id on first use."""
        with self._loading:
            if self._pipeline is None:
                self._pipeline = self._load(self._source)
        return self._pipeline

    def prepare(self) -> None:
        """Load the pipeline now: the runner calls this once, so a bad id stops the run early."""
        _ = self.pipeline

    def _load(self, hub_id: str) -> Any:
        try:
            from diffusers import DiffusionPipeline
        except ImportError:
            raise RuntimeError(DIFFUSERS_MISSING) from None
        try:
            pipeline = DiffusionPipeline.from_pretrained(hub_id, **{_dtype_keyword(): self.dtype})
            pipeline = pipeline.to(self.device)
        except Exception as exc:  # noqa: BLE001 - a config problem: one clear error, not N rows
            raise RuntimeError(LOAD_FAILED.format(hub_id=hub_id, reason=describe_exception(exc))) from None
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def generate_batch(self, requests: Sequence[Request]) -> list[Result]:
        pipeline = self.pipeline
        generators = [self._torch.Generator(device=self._generator_device()).manual_seed(r.seed)
                      for r in requests]
        try:
            output = pipeline(prompt=[r.text for r in requests], generator=generators, **self.call_kwargs)
        except Exception as exc:  # noqa: BLE001 - every sample of the batch records it
            message = BATCH_FAILED.format(reason=describe_exception(exc))
            return [Result.error(message) for _ in requests]
        images = list(output.images)
        flags = getattr(output, "nsfw_content_detected", None) or [False] * len(images)
        return [Result.refused(FLAGGED) if flagged else Result.ok(image)
                for image, flagged in zip(images, flags)]

    def _generator_device(self) -> str:
        device = getattr(self._pipeline, "device", None) or self.device
        return str(device)

    def __repr__(self) -> str:
        source = self._source if isinstance(self._source, str) else type(self._source).__name__
        return f"DiffusersGenerator({source!r}, batch_size={self.batch_size})"


def _dtype_keyword() -> str:
    """``dtype`` on diffusers versions that deprecate ``torch_dtype``, else ``torch_dtype``."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:  # pragma: no cover
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
