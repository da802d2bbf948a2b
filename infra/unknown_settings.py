"""Names the `PANTHEON_*` variables of the environment that nothing reads (a misspelled setting
would otherwise be silently ignored), each with the closest real one.

Known names come from the Settings class itself, so a setting added there is known here at once;
beside them: the catalog's provider overrides (`PANTHEON_PROVIDER_<NAME>_<FIELD>`, see
docs/providers.md) and the variables the test suite and CI read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from infra.llm.config import OVERRIDABLE_FIELDS
from infra.settings import ENV_PREFIX, Settings

PROVIDER_PREFIX = f"{ENV_PREFIX}PROVIDER_"
# Read by tests/, .ci/ and scripts/, never by the service.
TOOLING_VARIABLES = frozenset(
    {
        f"{ENV_PREFIX}REQUIRE_BROWSER",
        f"{ENV_PREFIX}ARTIFACTS_DIR",
        f"{ENV_PREFIX}BIN",
        f"{ENV_PREFIX}AUDIT_TOKEN",  # scripts/graphql_http_audit.sh
    }
)
TOOLING_PREFIX = f"{ENV_PREFIX}TEST_"


def setting_variables() -> frozenset[str]:
    """The environment variable of every Settings field."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name.upper()}")
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
    return frozenset(names)


def unknown_variable_warnings(environ: Mapping[str, str] | Iterable[str]) -> list[str]:
    """One line per unknown `PANTHEON_*` name in `environ`, sorted, naming the closest setting."""
    known = setting_variables()
    warnings = []
    for name in sorted(name for name in environ if name.upper().startswith(ENV_PREFIX)):
        upper = name.upper()  # pydantic-settings matches case-insensitively
        if upper in known or upper in TOOLING_VARIABLES or upper.startswith(TOOLING_PREFIX):
            continue
        if upper.startswith(PROVIDER_PREFIX):
            warning = _provider_override_warning(name)
            if warning is not None:
                warnings.append(warning)
            continue
        warnings.append(_unknown(name, _closest(upper, known)))
    return warnings


def _provider_override_warning(name: str) -> str | None:
    """`PANTHEON_PROVIDER_<NAME>_<FIELD>`: any provider name (the catalog decides which exist),
    but FIELD must be one of the overridable fields."""
    upper = name.upper()
    fields = [field.upper() for field in OVERRIDABLE_FIELDS]
    if any(
        upper.endswith(f"_{field}") and len(upper) > len(PROVIDER_PREFIX) + len(field) + 1
        for field in fields
    ):
        return None
    rest = upper.removeprefix(PROVIDER_PREFIX)
    # Try each split of the rest into <NAME>_<FIELD?> and suggest the closest field.
    best: tuple[float, str] | None = None
    parts = rest.split("_")
    for cut in range(1, len(parts)):
        provider, tail = "_".join(parts[:cut]), "_".join(parts[cut:])
        for field in fields:
            ratio = difflib.SequenceMatcher(None, tail, field).ratio()
            if ratio >= 0.6 and (best is None or ratio > best[0]):
                best = (ratio, f"{PROVIDER_PREFIX}{provider}_{field}")
    if best is not None:
        return _unknown(name, best[1])
    endings = " or ".join(f"_{field}" for field in fields)
    return f"{name} is not a Pantheon setting and is ignored; provider overrides end in {endings}"


def _closest(name: str, known: frozenset[str]) -> str | None:
    # Compared without the shared prefix, which would make every name look alike.
    suffixes = {variable.removeprefix(ENV_PREFIX): variable for variable in known}
    matches = difflib.get_close_matches(
        name.removeprefix(ENV_PREFIX), sorted(suffixes), n=1, cutoff=0.6
    )
    return suffixes[matches[0]] if matches else None


def _unknown(name: str, closest: str | None) -> str:
    hint = f"; did you mean {closest}?" if closest else ""
    return f"{name} is not a Pantheon setting and is ignored{hint}"
