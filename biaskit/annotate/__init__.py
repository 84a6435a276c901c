"""Validate the taggers on the run's own faces: human annotation out and back.

* :func:`export_annotation` -- a design-weighted sample of the run's detected
  faces (:mod:`biaskit.annotate.sample`), written as a self-contained HTML
  annotation page and Label Studio tasks with their labelling config;
* :func:`import_annotations` -- the annotators' CSVs and Label Studio exports,
  checked row by row, into ``RUN/validation/``: labels, majority, agreement
  (:mod:`biaskit.annotate.agreement`), the tagger's accuracy and the in-domain
  confusion table that ``biaskit measure`` and the report pick up.

Examples
--------
>>> export = export_annotation("runs/card", out="to_annotate", n=300)   # doctest: +SKIP
>>> result = import_annotations(["answers/"], run="runs/card")          # doctest: +SKIP
>>> result.tables["summary"][["attribute", "accuracy", "ci_low", "ci_high"]]  # doctest: +SKIP
"""

from biaskit.annotate.export import Export, export_annotation
from biaskit.annotate.importer import ImportResult, import_annotations

__all__ = ["export_annotation", "import_annotations", "Export", "ImportResult"]
