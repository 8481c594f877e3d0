"""Similar prior cases by imaging embedding, through the governed gateway.

The search is one SQL read of gold.imaging_series_features, so the caller's role decides what
it can see exactly as for any other query: a researcher's neighbours come only from consented
patients, a clinician's only from their site, and a query series the role may not see finds
nothing. Every search is audited (action `similarity_search`). The search is exact (cosine
distance over every visible series, brute force): at tens of thousands of series it is a
fraction of a second in DuckDB, and exact results need no recall caveat.
"""

from __future__ import annotations

import re

import pyarrow as pa

from ..governance.gateway import governed_request, run_query
from ..governance.policy import Denied, Policy
from ..governance.pseudonym import RESEARCH_KEY_PATTERN as _RESEARCH_KEY

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def similarity_sql(
    *, series_uid: str | None = None, research_key: str | None = None, k: int = 10
) -> str:
    """The SQL of a k-nearest-series search from one series or from a patient's latest series;
    the query patient's own series are never returned."""
    if (series_uid is None) == (research_key is None):
        raise ValueError("give exactly one of series_uid or research_key")
    if not 1 <= k <= 1000:
        raise ValueError("k must be between 1 and 1000")
    if series_uid is not None:
        if not _UID.fullmatch(series_uid):
            raise ValueError("series_uid must be a DICOM UID")
        pick = f"WHERE series_uid = '{series_uid}'"
    else:
        if not _RESEARCH_KEY.fullmatch(research_key):
            raise ValueError("research_key must look like rk_ and 20 hex digits")
        pick = f"WHERE research_key = '{research_key}' ORDER BY acquired_on DESC, series_uid"
    return f"""
WITH probe AS (
    SELECT research_key AS probe_key, embedding AS probe_embedding
    FROM gold.imaging_series_features {pick} LIMIT 1
)
SELECT f.research_key, f.series_uid, f.acquired_on, f.lesion_diameter_mm, f.lesion_mean_hu,
       array_cosine_distance(f.embedding, p.probe_embedding) AS distance
FROM gold.imaging_series_features f CROSS JOIN probe p
WHERE f.embedding IS NOT NULL AND f.research_key IS DISTINCT FROM p.probe_key
ORDER BY distance, f.series_uid
LIMIT {int(k)}
"""


def similar_cases(
    *,
    user: str,
    role: str,
    series_uid: str | None = None,
    research_key: str | None = None,
    k: int = 10,
    root: str,
    policy: Policy | None = None,
) -> pa.Table:
    """The k series most similar to a series (or to a patient's latest one) that `role` may
    see, nearest first. Raises Denied when the role may not read imaging features."""
    try:
        sql = similarity_sql(series_uid=series_uid, research_key=research_key, k=k)
    except ValueError as err:
        reason = f"bad similarity request: {err}"

        def refuse(_policy, _conn):
            raise Denied(reason)

        # Malformed requests are audited like refused ones (the text is hashed, not stored).
        request = f"similar_cases series={series_uid!r} patient={research_key!r} k={k}"
        return governed_request(
            "similarity_search",
            request,
            refuse,
            user=user,
            role=role,
            root=root,
            policy=policy,
        )
    return run_query(
        sql, user=user, role=role, root=root, policy=policy, action="similarity_search"
    ).table
