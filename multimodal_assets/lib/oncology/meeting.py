"""A meeting's packets on disk, and opening one through the gateway.

Layout under `<MM_DATA_DIR>/reports/tumor_board/<meeting-date>/` (folders 0700, files 0600):
`identified/<site>/<research key>.html` for the clinicians of the patient's site,
`deidentified/<research key>.html` for consented patients only, and an `index.html` in each.
File names are research keys: a folder listing shows no MRN.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import date
from pathlib import Path

from ..governance.gateway import governed_request, governed_select
from ..governance.policy import Denied, Policy
from ..governance.pseudonym import RESEARCH_KEY_PATTERN as _RESEARCH_KEY
from ..governance.pseudonym import date_shift_days
from ..platform.permissions import write_private_file
from .board_list import BoardList, resolve_patients
from .board_sections import gather
from .packet import identifiers_left, render, render_index
from .similarity import Profiles

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
IDENTIFIED, DEIDENTIFIED = "identified", "deidentified"


def meetings_dir(data_dir: Path) -> Path:
    return data_dir / "reports" / "tumor_board"


def locator_salt(key: bytes) -> bytes:
    """The key of the de-identified packets' locator hashes (derived from the pseudonym key)."""
    return hmac.new(key, b"tumor-board-locator", hashlib.sha256).digest()


def write_private(root: Path, relative: str, text: str) -> int:
    """Write `root/relative` for this user only (`root` and every folder below it 0700, the
    file 0600), leaving the folders above `root` as they are; the bytes written."""
    folders = [root]
    for part in Path(relative).parent.parts:
        folders.append(folders[-1] / part)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    return write_private_file(root / relative, text.encode())


def build_meeting(conn, board: BoardList, reports: Path, landing: Path, key: bytes) -> dict:
    """Write every listed patient's packets and the index pages under `reports` (the
    meetings folder; `landing` holds the landed files the key slices are drawn from); counts
    and sizes (no PHI)."""
    started = time.perf_counter()
    meeting = board.meeting.isoformat()
    profiles = Profiles.read(conn)
    salt = locator_salt(key)
    identified, deidentified, sizes, not_found, withheld = [], [], [], 0, {}
    for entry, research_key in resolve_patients(conn, board):
        if research_key is None:
            not_found += 1
            continue
        packet = gather(conn, research_key, board.meeting, landing, profiles)
        html = render(packet, identified=True, shift_days=0, salt=salt)
        name = f"{packet.site}/{research_key}.html"
        sizes.append(write_private(reports, f"{meeting}/{IDENTIFIED}/{name}", html))
        label = f"{packet.identity['Name'].text} ({packet.identity['MRN'].text})"
        identified.append((label, name, f"presented by {entry.site}"))
        if packet.consented:
            html = render(
                packet,
                identified=False,
                shift_days=date_shift_days(research_key, key),
                salt=salt,
            )
            left = identifiers_left(html, packet)
            if left:  # fail closed: no de-identified packet rather than one with an identifier
                for category in left:
                    withheld[category] = withheld.get(category, 0) + 1
                continue
            path = f"{meeting}/{DEIDENTIFIED}/{research_key}.html"
            sizes.append(write_private(reports, path, html))
            deidentified.append((research_key, f"{research_key}.html", ""))
    for variant, rows, is_identified in (
        (IDENTIFIED, identified, True),
        (DEIDENTIFIED, deidentified, False),
    ):
        index = render_index(board.meeting, rows, is_identified)
        write_private(reports, f"{meeting}/{variant}/index.html", index)
    return {
        "patients_listed": len(board.entries),
        "patients_not_found": not_found,
        "packets_identified": len(identified),
        "packets_deidentified": len(deidentified),
        **{f"deidentified_withheld: {k}": v for k, v in sorted(withheld.items())},
        "packet_kib_mean": round(sum(sizes) / len(sizes) / 1024, 1) if sizes else 0.0,
        "packet_kib_max": round(max(sizes) / 1024, 1) if sizes else 0.0,
        "seconds": round(time.perf_counter() - started, 2),
        "list_sha256": board.sha256,
    }


def open_packet(
    *,
    user: str,
    role: str,
    meeting: str,
    research_key: str,
    data_dir: Path,
    root: str,
    policy: Policy | None = None,
) -> Path:
    """The packet `role` may open for a patient at a meeting (audited as `tumor_board_packet`):
    the identified one for a role the policy gives identified packets and whose row filters show
    the patient (the clinician of the patient's site), the de-identified one likewise (the
    researcher, consented patients); otherwise Denied."""

    def work(active: Policy, conn):
        if not _DATE.fullmatch(meeting or "") or not _RESEARCH_KEY.fullmatch(research_key or ""):
            raise Denied("meeting must be YYYY-MM-DD and research_key rk_ and 20 hex digits")
        date.fromisoformat(meeting)
        account = active.authorize(user, role)
        variant = active.roles[role].packets
        if variant not in (IDENTIFIED, DEIDENTIFIED):
            raise Denied(f"role {role!r} receives no tumor-board packets")
        from ..governance import catalog

        patients = catalog.table("silver.patients")
        access = active.table_access(role, patients, patients.fqn)
        select = governed_select(access, active, account.site)
        (visible,) = conn.execute(
            f"SELECT count(*) FROM ({select}) WHERE research_key = $rk", {"rk": research_key}
        ).fetchall()[0]
        if not visible:
            raise Denied("that patient is not visible to this role")
        folder = meetings_dir(data_dir) / meeting / variant
        found = sorted(folder.glob(f"**/{research_key}.html")) if folder.exists() else []
        if not found:
            raise Denied("no such packet for this role")
        return found[0], {"tables": "silver.patients", "rows_returned": 1}

    request = f"tumor_board_packet meeting={meeting!r} patient={research_key!r}"
    return governed_request(
        "tumor_board_packet", request, work, user=user, role=role, root=root, policy=policy
    )
