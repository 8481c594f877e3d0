"""Similar patients through the governed gateway, audited like any query (action
`patient_similarity`).

What a role gets: the probe patient must be one its row filters let it see (else Denied). A
role whose filters hide patients is searched over the patients it may see only, unless the
policy lets it count hidden patients in aggregates (`aggregates_beyond_row_filters`, the
clinician): then the search runs over every profile, hits it may see are listed (identified or
not as its masks say) and the others only counted in the outcome aggregate, which is withheld
when fewer than `MIN_HIDDEN` hidden patients would be in it (subtracting the listed rows would
reveal them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..governance.gateway import checked_access, governed_request, governed_select
from ..governance.policy import Denied, Policy
from ..governance.pseudonym import RESEARCH_KEY_PATTERN as _RESEARCH_KEY
from .profiles import MODALITIES, PATIENT_PROFILES
from .similarity import ANCHOR, Profiles, exact_search, outcomes_among

MIN_HIDDEN = 5
OUTCOMES = "gold.clinical_outcomes"


@dataclass
class SimilarPatients:
    probe_modalities: tuple[str, ...]
    hits: list[dict]  # listed hits: research_key, distance, compared, contributions (and MRN)
    hidden: int  # hits the role may not see, counted in the aggregate only
    outcomes: dict | None  # 12-month progression among the k, with a 95% interval
    notes: list[str] = field(default_factory=list)


def _validated(research_key: str, k: int, modalities) -> tuple[str, ...]:
    if not _RESEARCH_KEY.fullmatch(research_key or ""):
        raise Denied("research_key must look like rk_ and 20 hex digits")
    if not 1 <= k <= 100:
        raise Denied("k must be between 1 and 100")
    asked = tuple(modalities or MODALITIES)
    if set(asked) - set(MODALITIES):
        raise Denied(f"modalities must be among {', '.join(MODALITIES)}")
    return asked


def similar_patients(
    *,
    user: str,
    role: str,
    research_key: str,
    k: int = 10,
    modalities=None,
    root: str,
    policy: Policy | None = None,
) -> SimilarPatients:
    """The k patients most similar to one patient on the modalities both have, as `role` may
    see them, with their outcomes aggregated; Denied when the role may not see the patient."""
    request = f"similar_patients patient={research_key!r} k={k} modalities={modalities}"

    def work(active: Policy, conn):
        asked = _validated(research_key, k, modalities)
        account = active.authorize(user, role)
        access = checked_access(conn, active, role, PATIENT_PROFILES, PATIENT_PROFILES.fqn)
        visible = {
            r[0]
            for r in conn.sql(
                f"SELECT research_key FROM ({governed_select(access, active, account.site)})"
            ).fetchall()
        }
        if research_key not in visible:
            raise Denied("that patient is not visible to this role")
        profiles = Profiles.read(conn)
        if not active.roles[role].aggregates_beyond_row_filters:
            profiles = profiles.subset(np.isin(profiles.keys, list(visible)))
        probe = profiles.index_of(research_key)
        found = exact_search(profiles, probe, k, asked)
        listed = [h for h in found if h.research_key in visible]
        hidden = len(found) - len(listed)
        result = SimilarPatients(
            tuple(m for m in profiles.modalities_of(probe) if m in asked),
            [_row(h) for h in listed],
            hidden,
            None,
        )
        if any(h.compared == (ANCHOR,) for h in found):
            result.notes.append(
                "hits compared on clinical data alone share no other modality with the patient"
            )
        if active.may_read(role, OUTCOMES):
            counted = listed if 0 < hidden < MIN_HIDDEN else found
            if counted is listed:
                result.notes.append(
                    f"{hidden} similar patient(s) of other sites left out of the outcome "
                    f"aggregate (fewer than {MIN_HIDDEN})"
                )
            result.outcomes = outcomes_among(conn, [h.research_key for h in counted])
        _identify(conn, active, role, account.site, result.hits)
        tables = f"{PATIENT_PROFILES.fqn},{OUTCOMES}"
        return result, {
            "tables": tables,
            "filters": ",".join(access.row_filters),
            "rows_returned": len(result.hits),
        }

    return governed_request(
        "patient_similarity", request, work, user=user, role=role, root=root, policy=policy
    )


def _row(hit) -> dict:
    return {
        "research_key": hit.research_key,
        "distance": round(hit.distance, 4),
        "compared": ",".join(hit.compared),
        **{f"from_{m}": round(v, 4) for m, v in hit.contributions.items()},
    }


def _identify(conn, policy: Policy, role: str, site: str | None, hits: list[dict]) -> None:
    """The MRN of each listed hit, for roles whose masks show it (the clinician's own site)."""
    from ..governance import catalog

    patients = catalog.table("silver.patients")
    if not hits or not policy.may_read(role, patients.fqn):
        return
    access = policy.table_access(role, patients, patients.fqn)
    if access.masks.get("mrn") != "none":
        return
    shown = dict(
        conn.execute(
            f"SELECT research_key, mrn FROM ({governed_select(access, policy, site)}) "
            f"WHERE research_key IN (SELECT unnest($keys))",
            {"keys": [h["research_key"] for h in hits]},
        ).fetchall()
    )
    for hit in hits:
        hit["mrn"] = shown.get(hit["research_key"])
