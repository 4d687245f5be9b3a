"""``${...}`` variables in scenario strings: selected patients and facilities, captures, world and run facts.

Forms (``p`` a patient variable, ``A`` a facility variable, ``x`` a capture):

* ``${p.local_id@A}`` p's local ID at A (a world ID, or a fresh ``ZZ…`` one), ``${p.cx@A}`` the whole CX
  ``id^^^NS&OID&ISO``; ``${p.rid}`` the regional ID the hub gave p (set by a ``link`` step, or captured);
  ``${p.family_name}``, ``given_name``, ``family_kana``, ``given_kana``, ``family_romaji``, ``given_romaji``,
  ``sex``, ``birth_date`` (YYYYMMDD), ``birth_date_iso``, ``postcode``, ``address``, ``phone``,
  ``patient_id``, ``world_regional_id``, ``consent_form``, ``index``.
* ``${A.code}``, ``namespace``, ``oid``, ``hd`` (``NS&OID&ISO``), ``name``, ``kind``, ``role``, ``user``.
* ``${x}`` a value captured by an earlier step.
* ``${world.reference_date}`` (YYYY-MM-DD), ``${world.reference_day}`` (YYYYMMDD), ``${world.profile}``,
  ``${world.seed}``, ``${world.today}`` (the run's date in JST, YYYY-MM-DD); ``${scenario.id}``,
  ``${scenario.tag}`` (8 hex digits, unique per scenario and run);
  ``${regional.namespace}``, ``${regional.oid}``, ``${regional.hd}`` (the target's regional domain).
* ``${param.NAME}`` a value the scenario declares under ``params`` (its default), unless the run or the
  target overrides it (``rhin run --param NAME=VALUE``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Final

__all__ = [
    "BUILTIN_ROOTS",
    "FACILITY_ATTRS",
    "PARAM_ROOT",
    "PATIENT_ATTRS",
    "REFERENCE",
    "Reference",
    "references",
    "substitute",
]

REFERENCE: Final = re.compile(r"\$\{([^}]*)\}")
_FORM: Final = re.compile(
    r"^(?P<root>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<attr>[A-Za-z_][A-Za-z0-9_]*))?(?:@(?P<at>[A-Za-z_]\w*))?$"
)
PATIENT_ATTRS: Final = frozenset(
    {
        "local_id",
        "cx",
        "rid",
        "family_name",
        "given_name",
        "family_kana",
        "given_kana",
        "family_romaji",
        "given_romaji",
        "sex",
        "birth_date",
        "birth_date_iso",
        "postcode",
        "address",
        "phone",
        "patient_id",
        "world_regional_id",
        "consent_form",
        "index",
    }
)
FACILITY_ATTRS: Final = frozenset({"code", "namespace", "oid", "hd", "name", "kind", "role", "user"})
PARAM_ROOT: Final = "param"
BUILTIN_ROOTS: Final[Mapping[str, frozenset[str]]] = {
    "world": frozenset({"reference_date", "reference_day", "profile", "seed", "today"}),
    "scenario": frozenset({"id", "tag"}),
    "regional": frozenset({"namespace", "oid", "hd"}),
}


class Reference:
    """One parsed ``${root.attr@at}``."""

    __slots__ = ("at", "attr", "root", "text")

    def __init__(self, text: str) -> None:
        m = _FORM.match(text.strip())
        if m is None:
            raise ValueError(
                f"${{{text}}} is not a variable: write ${{name}}, ${{name.attr}} or ${{p.attr@A}}"
            )
        self.text = text
        self.root: str = m["root"]
        self.attr: str | None = m["attr"]
        self.at: str | None = m["at"]

    def problem(
        self,
        patients: set[str],
        facilities: set[str],
        captures: set[str],
        params: frozenset[str] | set[str] = frozenset(),
    ) -> str | None:
        """Why this reference cannot resolve in a scenario declaring these names (None: it can)."""
        root, attr, at = self.root, self.attr, self.at
        if root == PARAM_ROOT and root not in patients | facilities:
            if attr is None or attr not in params:
                declared = ", ".join(sorted(params)) or "none"
                return f"${{{self.text}}}: not a parameter this scenario declares under `params` ({declared})"
            return None
        if root in patients:
            if attr is None or attr not in PATIENT_ATTRS:
                return (
                    f"${{{self.text}}}: patient attribute must be one of {', '.join(sorted(PATIENT_ATTRS))}"
                )
            if attr in ("local_id", "cx"):
                if at is None:
                    return f"${{{self.text}}}: say at which facility, e.g. ${{{root}.{attr}@A}}"
                if at not in facilities:
                    return f"${{{self.text}}}: {at!r} is not a facility of this scenario's `given`"
            elif at is not None:
                return f"${{{self.text}}}: only local_id and cx take @facility"
            return None
        if at is not None:
            return f"${{{self.text}}}: @facility only follows a patient's local_id or cx"
        if root in facilities:
            if attr not in FACILITY_ATTRS:
                return (
                    f"${{{self.text}}}: facility attribute must be one of {', '.join(sorted(FACILITY_ATTRS))}"
                )
            return None
        if root in BUILTIN_ROOTS:
            if attr not in BUILTIN_ROOTS[root]:
                return f"${{{self.text}}}: {root} has {', '.join(sorted(BUILTIN_ROOTS[root]))}"
            return None
        if root in captures:
            return None if attr is None else f"${{{self.text}}}: a captured value has no attributes"
        return f"${{{self.text}}}: {root!r} is no given patient or facility, nor captured by an earlier step"


def references(text: str) -> Iterator[Reference | ValueError]:
    """Every ``${...}`` in ``text``, parsed (or the ValueError saying why it is not a variable)."""
    for m in REFERENCE.finditer(text):
        try:
            yield Reference(m.group(1))
        except ValueError as exc:
            yield exc


def substitute(text: str, resolve: Callable[[Reference], str]) -> str:
    """``text`` with every ``${...}`` replaced by ``resolve(reference)``."""
    if "${" not in text:
        return text
    return REFERENCE.sub(lambda m: resolve(Reference(m.group(1))), text)
