"""The one grammar of encoder names: ``BASE``, ``BASE+VARIANT``, ``BASE+VARIANT-TAG``.

    dinov3-vitb16            a zoo encoder (or an alias of one: ``dinov3`` = ``dinov3-vit7b16``)
    dinov3-vitb16+sb         its SpatialBoost version (the method: dual-channel attention, LLM objective)
    dinov3-vitb16+sb-lora    an ablation of the SpatialBoost trainer (one checkpoint folder per name)

``BASE`` is everything before the first ``+`` (zoo names contain ``-`` but never ``+``); the variant
runs up to the first ``-`` after it; the rest is the tag. A TAG names trainer settings that differ
from the method's defaults, one *atom* per setting (table `SB_TAGS`)::

    axis        default                       atoms (TrainConfig override)
    objective   llm                           simpleft (objective=simple-ft, Table 8)
    mode        dual                          full (mode=full), lora (mode=lora)        (Table 17 / Fig. 6)
    order       forward                       reverse, random (order=...)                (Table 7)
    levels      pixel,object,scene,caption    any proper subset, its levels joined by "-" in this
                                              order: pixel, pixel-object, object-scene-caption, ...
    views       multi                         singleview (views=single: stage 2 without its
                                              multi-view VQA samples, Table 7)

Atoms of different axes combine, joined by ``-`` in the axis order above (``+sb-lora-reverse``,
``+sb-simpleft-lora``); `parse_encoder_name` accepts them (and level names) in any order and `str()`
writes the canonical one, which is exactly what the trainer's ``output_name(cfg)`` produces for those settings
(`tag_for` is the inverse of `tag_overrides`). Variant and tag are case-insensitive (``+SB``).

Light on purpose: imports only `bench.registry` (no torch), so reporting code can parse names.
Whether ``BASE`` is in the zoo (and its canonical spelling) is `bench.encoders.check_encoder_name`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping

from bench.registry import UnknownNameError, did_you_mean

VARIANT_SEP = "+"
TAG_SEP = "-"
SB = "sb"  # the SpatialBoost variant
SB_SUFFIX = VARIANT_SEP + SB

# The SpatialBoost trainer's ablation axes and their defaults (bench.spatialboost.config.TrainConfig);
# the levels are bench.spatialboost.data.LEVELS, in their order (a test keeps the two equal).
SB_LEVELS: tuple[str, ...] = ("pixel", "object", "scene", "caption")
SB_AXES: tuple[str, ...] = ("objective", "mode", "order", "levels", "views")
SB_DEFAULTS: dict[str, str] = {"objective": "llm", "mode": "dual", "order": "forward", "levels": ",".join(SB_LEVELS),
                               "views": "multi"}


def _level_atoms() -> dict[str, dict[str, str]]:
    out = {}
    for k in range(1, len(SB_LEVELS)):
        for subset in combinations(SB_LEVELS, k):
            out[TAG_SEP.join(subset)] = {"levels": ",".join(subset)}
    return out


# tag atom -> TrainConfig overrides: the one table behind names, the trainer's output names and
# the `bench sb train` flags of an ablation
SB_TAGS: dict[str, dict[str, str]] = {
    "simpleft": {"objective": "simple-ft"},
    "full": {"mode": "full"},
    "lora": {"mode": "lora"},
    "reverse": {"order": "reverse"},
    "random": {"order": "random"},
    **_level_atoms(),
    "singleview": {"views": "single"},
}

# variant -> its tag table (a variant's provider is registered in bench.encoders.ENCODER_VARIANTS)
VARIANT_TAGS: dict[str, Mapping[str, Mapping[str, str]]] = {SB: SB_TAGS}


@dataclass(frozen=True)
class EncoderName:
    base: str
    variant: str | None = None
    tag: str | None = None

    def __str__(self) -> str:
        out = self.base
        if self.variant:
            out += VARIANT_SEP + self.variant
            if self.tag:
                out += TAG_SEP + self.tag
        return out

    @property
    def is_variant(self) -> bool:
        return self.variant is not None

    def with_base(self, base: str) -> "EncoderName":
        return EncoderName(base, self.variant, self.tag)

    @property
    def method(self) -> "EncoderName":
        """The variant without its ablation tag (``X+sb-lora`` -> ``X+sb``)."""
        return EncoderName(self.base, self.variant, None)


def normalise_levels(levels: str | tuple[str, ...] | list[str]) -> str:
    """``"scene+pixel"`` / ``("scene", "pixel")`` -> ``"pixel,scene"`` (canonical order); ValueError if invalid."""
    items = [x for x in levels.replace("+", ",").split(",") if x] if isinstance(levels, str) else list(levels)
    bad = [x for x in items if x not in SB_LEVELS]
    if bad or not items:
        raise ValueError(f"levels must be a non-empty subset of {SB_LEVELS}, got {levels!r}")
    return ",".join(lv for lv in SB_LEVELS if lv in items)


def _tag_listing(variant: str, table: Mapping[str, Mapping[str, str]]) -> str:
    atoms = [t for t, ov in table.items() if "levels" not in ov]
    levels = " or a proper subset of the levels " + TAG_SEP.join(SB_LEVELS) if len(atoms) < len(table) else ""
    return (f"tags of +{variant}: {', '.join(atoms)}{levels}; atoms of different settings combine, e.g. "
            f"+{variant}-lora-reverse; `bench list encoders` shows the table")


def _unknown(text: str, base: str, variant: str, bad: str, table: Mapping[str, Mapping[str, str]]) -> UnknownNameError:
    known = [f"{base}{VARIANT_SEP}{variant}"] + [f"{base}{VARIANT_SEP}{variant}{TAG_SEP}{t}" for t in table]
    close = did_you_mean(bad, list(table))
    return UnknownNameError("encoder", text, [f"{base}{VARIANT_SEP}{variant}{TAG_SEP}{t}" for t in close], known,
                            _tag_listing(variant, table))


def _unknown_token(text: str, base: str, variant: str, tag: str, token: str,
                   table: Mapping[str, Mapping[str, str]]) -> UnknownNameError:
    """Suggest whole names: the tag with the unknown token replaced by a close atom."""
    tokens = tag.split(TAG_SEP)
    out: list[str] = []
    for atom in did_you_mean(token, list(table)) if token else list(table)[:5]:
        candidate = TAG_SEP.join(atom if t == token else t for t in tokens) if token else atom
        try:
            name = str(parse_encoder_name(f"{base}{VARIANT_SEP}{variant}{TAG_SEP}{candidate}"))
        except UnknownNameError:
            continue
        if name not in out:
            out.append(name)
    err = _unknown(text, base, variant, token, table)
    return UnknownNameError("encoder", text, out, err.known, _tag_listing(variant, table))


def _atoms(text: str, base: str, variant: str, tag: str, table: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """axis -> value of a tag. Tokens are split on "-"; level names collect into one levels subset (in
    any order), every other token is an atom of the table; one value per setting."""
    found: dict[str, str] = {}  # axis -> atom
    levels: list[str] = []
    for token in tag.split(TAG_SEP):
        if token in SB_LEVELS and table.get(token) == {"levels": token}:
            levels.append(token)
            continue
        if token not in table:
            raise _unknown_token(text, base, variant, tag, token, table)
        for axis in table[token]:
            if found.get(axis) == token:
                continue
            if axis in found:
                both = [f"{base}{VARIANT_SEP}{variant}{TAG_SEP}{a}" for a in (found[axis], token)]
                raise UnknownNameError("encoder", text, both, [], f"{found[axis]!r} and {token!r} both set {axis}: "
                                                                  f"one value per setting")
            found[axis] = token
    out = {axis: dict(table[atom])[axis] for axis, atom in found.items()}
    if levels:
        out["levels"] = normalise_levels(levels)
    return out


def parse_encoder_name(text: str) -> EncoderName:
    """Parse (and canonicalise the tag of) an encoder name; `UnknownNameError` for an unknown variant
    or tag, with did-you-mean suggestions. The base is not looked up in the zoo here."""
    text = str(text).strip()
    base, sep, rest = text.partition(VARIANT_SEP)
    if not base:
        raise UnknownNameError("encoder", text, [], [])
    if not sep:
        return EncoderName(base)
    variant, tsep, tag = rest.lower().partition(TAG_SEP)
    if variant not in VARIANT_TAGS:
        suggestions = [f"{base}{VARIANT_SEP}{v}" for v in did_you_mean(variant, list(VARIANT_TAGS))]
        raise UnknownNameError("encoder", text, suggestions, [f"{base}{VARIANT_SEP}{v}" for v in VARIANT_TAGS],
                               f"variants: {', '.join('+' + v for v in VARIANT_TAGS)}")
    if not tsep:
        return EncoderName(base, variant)
    table = VARIANT_TAGS[variant]
    if not tag:
        raise _unknown(text, base, variant, tag, table)
    return EncoderName(base, variant, tag_for(_atoms(text, base, variant, tag, table), variant))


def tag_overrides(name: EncoderName | str) -> dict[str, str]:
    """The trainer settings a name stands for, on top of `SB_DEFAULTS` ({} for ``X+sb``)."""
    name = parse_encoder_name(name) if isinstance(name, str) else name
    if not name.variant or not name.tag:
        return {}
    return _atoms(str(name), name.base, name.variant, name.tag, VARIANT_TAGS[name.variant])


def tag_for(settings: Mapping[str, str], variant: str = SB) -> str | None:
    """Inverse of `tag_overrides`: the canonical tag of trainer settings (None = the method's defaults).

    `settings` maps the axes (`SB_AXES`) to values; missing axes are at their default. ValueError for a
    value that no tag names (it cannot be told apart from another checkpoint by its name).
    """
    table = VARIANT_TAGS[variant]
    atoms = []
    for axis in SB_AXES:
        value = settings.get(axis, SB_DEFAULTS[axis])
        if axis == "levels":
            value = normalise_levels(value)
        if value == SB_DEFAULTS[axis]:
            continue
        atom = next((t for t, ov in table.items() if ov == {axis: value}), None)
        if atom is None:
            raise ValueError(f"no {variant} name tag for {axis}={value!r} (known: "
                             f"{sorted(t for t, ov in table.items() if axis in ov)})")
        atoms.append(atom)
    return TAG_SEP.join(atoms) or None


def tag_table(variant: str = SB) -> list[str]:
    """One line per setting: its tag atoms and default (what `bench list encoders` prints)."""
    table = VARIANT_TAGS[variant]
    lines = []
    for axis in SB_AXES:
        atoms = [f"{t} ({axis}={ov[axis]})" for t, ov in table.items() if set(ov) == {axis}]
        if axis == "levels":
            atoms = [f"a proper subset of {TAG_SEP.join(SB_LEVELS)} joined by '{TAG_SEP}', e.g. "
                     f"{TAG_SEP.join(SB_LEVELS[:2])} (levels={','.join(SB_LEVELS[:2])})"]
        lines.append(f"{axis:9} default {SB_DEFAULTS[axis]}; tags: {', '.join(atoms)}")
    return lines


def sb_base(text: str) -> str | None:
    """``DINOv3+SB`` -> ``DINOv3``, ``x+sb-lora`` -> ``x``; None for a name that is not a SpatialBoost one."""
    try:
        name = parse_encoder_name(text)
    except UnknownNameError:
        return None
    return name.base if name.variant == SB else None


__all__ = ["EncoderName", "SB", "SB_AXES", "SB_DEFAULTS", "SB_LEVELS", "SB_SUFFIX", "SB_TAGS", "TAG_SEP",
           "VARIANT_SEP", "VARIANT_TAGS", "normalise_levels", "parse_encoder_name", "sb_base", "tag_for",
           "tag_overrides", "tag_table"]
