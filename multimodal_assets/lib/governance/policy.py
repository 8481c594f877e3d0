"""Policy as code: who may read which table, which rows, and with which column masks.

Everything here fails closed: a policy that does not load or validate, an unknown user or role,
a table no grant names, an undeclared table or a column no mask rule matches is a denial.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ..platform.tables import CLASSIFICATIONS, Table

MASKS = ("none", "redact", "hash", "shift_date", "zip3", "age_90_plus")
DEFAULT_POLICY = "access.yaml"
PACKET_VARIANTS = ("identified", "deidentified", "none")


class PolicyError(Exception):
    """The policy file is missing, malformed or inconsistent: nothing may be served."""


class Denied(Exception):
    """A request the policy does not allow. The reason names objects, never data values."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MaskRule:
    mask: str
    classification: str | None = None
    types: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def matches(self, column_name: str, classification: str, column_type: str) -> bool:
        return (
            (self.classification is None or self.classification == classification)
            and (not self.types or column_type.upper() in self.types)
            and (not self.columns or column_name in self.columns)
        )


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    tables: tuple[str, ...]
    mask_profile: str
    row_filters: tuple[str, ...] = ()
    serving: bool = False
    # May read earlier Delta versions of tables (AS OF), e.g. to rebuild a training set.
    time_travel: bool = False
    # May have patients its row filters hide counted in aggregates (never listed), e.g. a
    # clinician's similar patients from other sites.
    aggregates_beyond_row_filters: bool = False
    # Which tumor-board packets the role opens (of the patients its row filters show):
    # identified | deidentified | none.
    packets: str = "none"


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]
    site: str | None = None


@dataclass(frozen=True)
class TableAccess:
    """What one role gets of one table: masks per column and the row filters to apply."""

    table: Table
    masks: dict[str, str]
    row_filters: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """What one request may cost: seconds of engine time, rows returned, requests per user per
    minute (enforced by the gateway service, which sees every request of a user)."""

    query_seconds: float = 30.0
    max_rows: int = 1_000_000
    requests_per_minute: int = 120


@dataclass(frozen=True)
class Policy:
    version: int
    mask_profiles: dict[str, tuple[MaskRule, ...]]
    row_filters: dict[str, str]
    non_patient_tables: frozenset[str]
    roles: dict[str, Role]
    users: dict[str, User]
    source: str = field(default="", compare=False)
    limits: Limits = field(default_factory=Limits)

    def authorize(self, user: str, role: str) -> User:
        """The user, if it exists and holds the role; otherwise Denied."""
        if role not in self.roles:
            raise Denied(f"unknown role {role!r}")
        account = self.users.get(user)
        if account is None:
            raise Denied(f"unknown user {user!r}")
        if role not in account.roles:
            raise Denied(f"user {user!r} does not hold role {role!r}")
        return account

    def may_read(self, role: str, table_fqn: str) -> bool:
        grants = self.roles[role].tables if role in self.roles else ()
        return any(fnmatch.fnmatchcase(table_fqn, pattern) for pattern in grants)

    def column_mask(self, role: str, table: Table, column: str) -> str:
        """The mask for one column, or Denied when no rule of the role's profile matches."""
        declared = table.column(column)
        for rule in self.mask_profiles[self.roles[role].mask_profile]:
            if rule.matches(declared.name, declared.classification, declared.type):
                return rule.mask
        raise Denied(f"no mask rule for {table.fqn}.{column} under role {role!r}")

    def table_access(self, role: str, table: Table | None, table_fqn: str) -> TableAccess:
        """The masks and row filters of a table for a role, or Denied."""
        if role not in self.roles:
            raise Denied(f"unknown role {role!r}")
        if not self.may_read(role, table_fqn):
            raise Denied(f"role {role!r} may not read {table_fqn}")
        if table is None:
            raise Denied(f"{table_fqn} is not a declared (classified) table")
        masks = {c: self.column_mask(role, table, c) for c in table.column_names}
        filters = self.roles[role].row_filters
        if filters and table.fqn not in self.non_patient_tables:
            if "research_key" not in table.column_names:
                raise Denied(f"{table.fqn} has no research_key to apply row filters to")
        elif filters:
            filters = ()
        return TableAccess(table, masks, tuple(filters))


def _tuple(value, what: str) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what} must be a list of strings")
    return tuple(value)


def parse_policy(document, source: str = "") -> Policy:
    """Validate a parsed YAML document into a Policy; any inconsistency raises PolicyError."""
    if not isinstance(document, dict) or document.get("version") != 1:
        raise PolicyError("policy must be a mapping with version: 1")
    try:
        profiles = {}
        for name, rules in (document.get("mask_profiles") or {}).items():
            parsed = []
            for rule in rules:
                mask = rule["mask"]
                if mask not in MASKS:
                    raise PolicyError(f"profile {name}: unknown mask {mask!r}")
                classification = rule.get("classification")
                if classification is not None and classification not in CLASSIFICATIONS:
                    raise PolicyError(f"profile {name}: unknown classification {classification!r}")
                parsed.append(
                    MaskRule(
                        mask,
                        classification,
                        tuple(t.upper() for t in _tuple(rule.get("types"), "types")),
                        _tuple(rule.get("columns"), "columns"),
                    )
                )
            profiles[name] = tuple(parsed)
        row_filters = dict(document.get("row_filters") or {})
        roles = {}
        for name, spec in (document.get("roles") or {}).items():
            role = Role(
                name,
                str(spec.get("description", "")),
                _tuple(spec["tables"], "tables"),
                spec["masks"],
                _tuple(spec.get("row_filters"), "row_filters"),
                bool(spec.get("serving", False)),
                bool(spec.get("time_travel", False)),
                bool(spec.get("aggregates_beyond_row_filters", False)),
                str(spec.get("packets", "none")),
            )
            if role.packets not in PACKET_VARIANTS:
                raise PolicyError(f"role {name}: packets must be one of {PACKET_VARIANTS}")
            if role.mask_profile not in profiles:
                raise PolicyError(f"role {name}: unknown mask profile {role.mask_profile!r}")
            unknown = [f for f in role.row_filters if f not in row_filters]
            if unknown:
                raise PolicyError(f"role {name}: unknown row filters {unknown}")
            roles[name] = role
        users = {}
        for name, spec in (document.get("users") or {}).items():
            user = User(name, _tuple(spec["roles"], "roles"), spec.get("site"))
            if any(r not in roles for r in user.roles):
                raise PolicyError(f"user {name}: unknown role")
            users[name] = user
        non_patient = frozenset(_tuple(document.get("non_patient_tables"), "non_patient_tables"))
        limits = Limits(**(document.get("limits") or {}))
        if min(limits.query_seconds, limits.max_rows, limits.requests_per_minute) <= 0:
            raise PolicyError("limits must be positive")
    except (KeyError, TypeError, AttributeError) as err:
        raise PolicyError(f"malformed policy ({type(err).__name__}: {err})") from None
    if not roles:
        raise PolicyError("policy grants no roles")
    return Policy(1, profiles, row_filters, non_patient, roles, users, source, limits)


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy file (default: the one versioned in the package); PolicyError if unusable."""
    try:
        if path is None:
            text = resources.files("multimodal_assets.policy").joinpath(DEFAULT_POLICY).read_text()
            source = f"multimodal_assets/policy/{DEFAULT_POLICY}"
        else:
            text, source = Path(path).read_text(), str(path)
        document = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"policy could not be read ({type(err).__name__})") from None
    return parse_policy(document, source)


def decision_rows(policy: Policy, tables) -> list[dict]:
    """Role × table × column → allow (with mask and filters) or deny (with the reason)."""
    rows = []
    for role in sorted(policy.roles):
        for table in tables:
            try:
                access = policy.table_access(role, table, table.fqn)
            except Denied as denied:
                access, reason = None, denied.reason
            for column in table.columns:
                rows.append(
                    {
                        "role": role,
                        "table_name": table.fqn,
                        "column_name": column.name,
                        "classification": column.classification,
                        "decision": "allow" if access else "deny",
                        "mask": access.masks[column.name] if access else None,
                        "row_filters": ",".join(access.row_filters) if access else None,
                        "reason": None if access else reason,
                    }
                )
    return rows
