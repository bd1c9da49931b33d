"""Built-in profiles: run instructions shipped with the tool (``jira.yaml``, ...).

A profile is a spec file like any other. Its variables hold the paths of a standard install;
discovery replaces them with what it finds on the machine (``profile_variables``), and
``--set`` replaces both. Several profiles can be combined into one spec (``load_profiles``):
their items are concatenated, an item repeated identically (``system``) is kept once.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Optional, Union

from koncis_diag.errors import InputError
from koncis_diag.spec import PRODUCTS, Spec
from koncis_diag.yamlio import NOWHERE, Origin, YamlDocument, load_yaml_file

if TYPE_CHECKING:
    from koncis_diag.collect.discovery import Installation, ProcessFacts
    from koncis_diag.spec.reader import DocReader

PROFILE_DIR = Path(__file__).resolve().parent
PROFILE_NAMES = ("jira", "confluence", "bitbucket", "system")
_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})


def profile_path(name: str, origin: Origin = NOWHERE) -> Path:
    """The YAML file of a built-in profile; ``InputError`` for an unknown name."""
    if name not in PROFILE_NAMES:
        close = difflib.get_close_matches(name, PROFILE_NAMES, n=1)
        hint = f", did you mean '{close[0]}'?" if close else ""
        raise origin.error(
            f"unknown profile {name!r}{hint} (built-in profiles: {', '.join(PROFILE_NAMES)})"
        )
    return PROFILE_DIR / f"{name}.yaml"


def profile_document(name: str, origin: Origin = NOWHERE) -> YamlDocument:
    return load_yaml_file(profile_path(name, origin), source_name=f"profiles/{name}.yaml")


def profile_text(name: str) -> str:
    """The profile's YAML as shipped (for ``spec new`` and the docs)."""
    return profile_path(name).read_text(encoding="utf-8")


def profile_reader(name: str, origin: Origin = NOWHERE) -> DocReader:
    from koncis_diag.spec.reader import DocReader

    return DocReader(profile_document(name, origin), str(PROFILE_DIR), profile=name)


def profile_variables(installations: Sequence[Installation]) -> dict[str, str]:
    """Variables discovered on the machine (``jira_home``, ``jira_install``, ...). With two
    installations of one product the first (a running one, see ``discover``) provides them."""
    found: dict[str, str] = {}
    for installation in installations:
        for name, value in installation.variables().items():
            found.setdefault(name, value)
    return found


def profiles_for(installations: Sequence[Installation]) -> list[str]:
    """The profiles to use when the admin gives no spec: one per product found, then
    ``system`` (alone when nothing Atlassian was found)."""
    found = {i.product for i in installations}
    return [p for p in PRODUCTS if p in found] + ["system"]


def load_profiles(
    names: Sequence[str],
    installations: Sequence[Installation] = (),
    overrides: Mapping[str, str] = _NO_OVERRIDES,
) -> Spec:
    """One spec from several profiles (``koncis-diag collect --profile jira --profile system``).

    Its name joins the profile names (``jira-system``); ``source`` is ``profile:jira+system``
    and ``sha256`` covers the profiles' YAML files in order.
    """
    from koncis_diag.spec.reader import assemble

    if not names:
        raise InputError(f"no profile given (built-in profiles: {', '.join(PROFILE_NAMES)})")
    unique = list(dict.fromkeys(names))
    readers = [profile_reader(name, Origin(f"--profile {name}")) for name in unique]
    spec = assemble(
        None, readers, overrides, profile_variables(installations), name="-".join(unique)
    )
    digest = hashlib.sha256()
    for reader in readers:
        digest.update(reader.doc.sha256.encode("ascii"))
    sha256 = readers[0].doc.sha256 if len(readers) == 1 else digest.hexdigest()
    return replace(spec, source="profile:" + "+".join(unique), sha256=sha256)


def load_profile(
    name: str,
    installation: Optional[Installation] = None,
    overrides: Mapping[str, str] = _NO_OVERRIDES,
) -> Spec:
    """A built-in profile as a spec, its paths taken from ``installation`` when given."""
    return load_profiles([name], [installation] if installation is not None else [], overrides)


def typical_variables() -> dict[str, str]:
    """The profiles' defaults for every product variable (``jira_home``, ...): the paths of a
    typical server, used by ``spec check`` for specs that use them without declaring them."""
    from koncis_diag.spec.variables import Variables

    declared = {}
    for name in PRODUCTS:
        reader = profile_reader(name)
        declared.update(
            {k: v for k, v in reader.declared_variables().items() if k.startswith(name + "_")}
        )
    return Variables(declared).resolve_all()


def spec_for_machine(
    root: Path = Path("/"),
    names: Sequence[str] = (),
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    *,
    processes: Optional[Sequence[ProcessFacts]] = None,
) -> tuple[Spec, list[Installation]]:
    """``koncis-diag collect|plan`` without a spec: discover, then the given profiles (or those
    of the products found, see ``profiles_for``) with the discovered paths."""
    from koncis_diag.collect.discovery import discover

    installations = discover(root, processes)
    chosen = list(names) or profiles_for(installations)
    return load_profiles(chosen, installations, overrides), installations


def load_spec_for_machine(
    path: Union[str, Path],
    root: Path = Path("/"),
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    *,
    processes: Optional[Sequence[ProcessFacts]] = None,
) -> Spec:
    """``--spec FILE``: the file, with the variables discovery finds below ``root``
    (``jira_home``, ...) available to it and to the profile it starts from."""
    from koncis_diag.collect.discovery import discover
    from koncis_diag.spec import load_spec

    installations = discover(root, processes)
    return load_spec(path, overrides, discovered=profile_variables(installations))
