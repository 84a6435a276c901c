"""Attribute taxonomies (DESIGN.md §3).

Every label that enters an observations table is a category of its attribute's
taxonomy, or :data:`UNCLEAR` when the tagger abstains.  The entropy of a
distribution is normalised by the size of the taxonomy, so the taxonomies here
are part of the metric definitions, not decoration.

User-defined attributes (for example a CLIP zero-shot attribute read from a YAML
file) are added with :func:`register_attribute`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

UNCLEAR = "unclear"

GENDER = ("Male", "Female")
RACE7 = (
    "White",
    "Black",
    "Latino_Hispanic",
    "East Asian",
    "Southeast Asian",
    "Indian",
    "Middle Eastern",
)
RACE4 = ("White", "Black", "Asian", "Indian")
AGE_BINS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
AGE_GROUP = ("child", "adult")

#: Monk Skin Tone swatches (sRGB hex), tone 1 (lightest) to tone 10 (darkest).
MST_SWATCHES: Mapping[str, str] = MappingProxyType(
    {
        "MST1": "#f6ede4",
        "MST2": "#f3e7db",
        "MST3": "#f7ead0",
        "MST4": "#eadaba",
        "MST5": "#d7bd96",
        "MST6": "#a07e56",
        "MST7": "#825c43",
        "MST8": "#604134",
        "MST9": "#3a312a",
        "MST10": "#292420",
    }
)
SKIN_TONE = tuple(MST_SWATCHES)

#: How FairFace's seven race categories fold into its four.
RACE7_TO_RACE4: Mapping[str, str] = MappingProxyType(
    {
        "White": "White",
        "Black": "Black",
        "Latino_Hispanic": "White",
        "East Asian": "Asian",
        "Southeast Asian": "Asian",
        "Indian": "Indian",
        "Middle Eastern": "White",
    }
)

_BUILTIN: dict[str, tuple[str, ...]] = {
    "gender": GENDER,
    "race": RACE7,
    "race4": RACE4,
    "age": AGE_BINS,
    "age_group": AGE_GROUP,
    "skin_tone": SKIN_TONE,
}
_registry: dict[str, tuple[str, ...]] = dict(_BUILTIN)

UNKNOWN_ATTRIBUTE = "unknown attribute {attribute!r}; known attributes: {known}"
UNKNOWN_LABEL = "label {label!r} is not in the {attribute!r} taxonomy {labels}"


def attributes() -> tuple[str, ...]:
    """Names of every known attribute, built-in and registered."""
    return tuple(_registry)


def labels(attribute: str) -> tuple[str, ...]:
    """The categories of ``attribute``, in their canonical order.

    Raises
    ------
    KeyError
        If the attribute is neither built in nor registered.

    Examples
    --------
    >>> labels("gender")
    ('Male', 'Female')
    """
    try:
        return _registry[attribute]
    except KeyError:
        raise KeyError(
            UNKNOWN_ATTRIBUTE.format(attribute=attribute, known=", ".join(_registry))
        ) from None


def register_attribute(attribute: str, categories: list[str] | tuple[str, ...]) -> None:
    """Add a user-defined attribute (or redefine a previously registered one).

    Built-in attributes cannot be redefined: their taxonomies fix the entropy
    normalisation that makes results comparable across runs.
    """
    categories = tuple(str(c) for c in categories)
    if attribute in _BUILTIN and categories != _BUILTIN[attribute]:
        raise ValueError(f"the built-in attribute {attribute!r} cannot be redefined")
    if len(categories) < 2 or len(set(categories)) != len(categories):
        raise ValueError(
            f"attribute {attribute!r} needs at least two distinct categories, got {categories}"
        )
    if UNCLEAR in categories:
        raise ValueError(f"attribute {attribute!r}: {UNCLEAR!r} is reserved for abstentions")
    _registry[attribute] = categories


def check_label(attribute: str, label: str, *, allow_unclear: bool = True) -> str:
    """Return ``label`` if it belongs to the taxonomy of ``attribute``, else raise."""
    if allow_unclear and label == UNCLEAR:
        return label
    categories = labels(attribute)
    if label not in categories:
        raise ValueError(UNKNOWN_LABEL.format(label=label, attribute=attribute, labels=categories))
    return label


def normalize_label(attribute: str, value: object) -> str:
    """Map common spellings to the canonical label (``3`` -> ``"MST3"`` for skin tone)."""
    text = str(value).strip()
    if attribute == "skin_tone" and text.isdigit():
        return f"MST{int(text)}"
    return text
