"""A baseline taken from an earlier run directory, without generating anything."""

from __future__ import annotations

from pathlib import Path

from biaskit.generate.base import BaseGenerator, Request, Result, describe_exception
from biaskit.tables import STATUS_OK, STATUS_REFUSED

NO_SUCH_MODEL = "{run}: no model {model!r} in this run (it has: {models})"
AMBIGUOUS_MODEL = "{run}: holds several models ({models}); name one as run:PATH#MODEL"
NOT_IN_RUN = "sample {sample} of prompt {prompt_id!r} is not in run {run} (model {model!r})"
UNREADABLE = "{run}: could not read the image of the earlier run: {reason}"
PROMPT_DIFFERS = ("prompt {prompt_id!r} was generated from {old!r} in run {run}, not from {new!r}: "
                  "not taken over")


class RunGenerator(BaseGenerator):
    """Serve the samples of one model of an earlier run, with their original seeds.

    Each stored image is copied into the new run (same bytes, same sha256), so
    runs stay self-contained and movable; refusals and errors are carried over.

    Parameters
    ----------
    run_dir : str or Path
        The earlier run directory.
    model : str, optional
        Which of its models; may be omitted when it holds exactly one.

    Examples
    --------
    >>> make_generator("run:runs/2024-baseline#dall-e-3")   # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, *, model: str | None = None):
        from biaskit.store import ImageStore

        self.run_dir = Path(run_dir)
        self._store = ImageStore(self.run_dir)
        table = self._store.images()
        models = sorted(table["model"].unique())
        if model is None:
            if len(models) != 1:
                raise ValueError(AMBIGUOUS_MODEL.format(run=self.run_dir, models=", ".join(models) or "none"))
            model = models[0]
        if model not in models:
            raise ValueError(NO_SUCH_MODEL.format(run=self.run_dir, model=model, models=", ".join(models) or "none"))
        self.model = model
        rows = table[table["model"] == model].to_dict("records")
        self._rows = {(row["prompt_id"], int(row["sample"])): row for row in rows}

    def generate_one(self, request: Request) -> Result:
        row = self._rows.get((request.prompt_id, request.sample))
        if row is None:
            return Result.error(NOT_IN_RUN.format(sample=request.sample, prompt_id=request.prompt_id,
                                                  run=self.run_dir, model=self.model))
        seed = int(row["seed"])
        if row["status"] == STATUS_REFUSED:
            return Result.refused(row["error"], revised_prompt=row["revised_prompt"], seed=seed)
        if row["status"] != STATUS_OK:
            return Result.error(row["error"], seed=seed)
        if row.get("prompt_text") and row["prompt_text"] != request.text:
            return Result.error(PROMPT_DIFFERS.format(run=self.run_dir, prompt_id=request.prompt_id,
                                                      old=row["prompt_text"], new=request.text), seed=seed)
        try:  # inside the earlier run's image store only, and the bytes must match their sha256
            data = self._store.read_image(row)
        except (OSError, ValueError) as exc:
            return Result.error(UNREADABLE.format(run=self.run_dir, reason=describe_exception(exc)), seed=seed)
        return Result.ok(data=data, revised_prompt=row["revised_prompt"], seed=seed)

    def __repr__(self) -> str:
        return f"RunGenerator({str(self.run_dir)!r}, model={self.model!r})"
