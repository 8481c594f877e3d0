"""The tumor-board packet as one self-contained HTML page (styles and the thumbnail inline, no
network resource), every statement an element with `data-source-sha256` and
`data-source-locator`; identified for the clinicians of the patient's site, or de-identified
(research key, dates moved by the patient's shift, locators hashed, no name, MRN or birth date).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import date, timedelta
from html import escape, unescape

from .board import ACTIONABILITY_SOURCE, Fact, Packet

DISCLAIMER = (
    "Supports the tumor board's review of the evidence. It recommends nothing: every decision "
    "is the clinicians'."
)
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1b1f24}
h1{font-size:1.5em;margin:0} h2{font-size:1.1em;border-bottom:1px solid #ccd;margin-top:1.6em}
.banner{background:#fff6d8;border:1px solid #e5c96b;padding:.5em .8em;margin:1em 0}
.fact{display:block;padding:.1em 0} .date{color:#556;font-variant-numeric:tabular-nums}
.question{color:#8a3b00} .missing{color:#8a3b00} table{border-collapse:collapse}
td,th{padding:.15em .6em;text-align:left;border-bottom:1px solid #eee}
.src{font-size:.75em;color:#889}
"""
SECTIONS = (
    "header",
    "diagnosis",
    "timeline",
    "molecular",
    "imaging",
    "risk",
    "similar",
    "trials",
    "completeness",
)


class _Writer:
    def __init__(self, packet: Packet, identified: bool, shift_days: int, salt: bytes):
        self.packet, self.identified, self.shift, self.salt = packet, identified, shift_days, salt

    def day(self, value: date | None) -> str:
        if value is None:
            return ""
        shown = value if self.identified else value + timedelta(days=self.shift)
        return shown.isoformat()

    def locator(self, value: str | None) -> str:
        if value is None or self.identified:
            return value or ""
        # Locators can be resource ids: a de-identified packet carries a keyed hash of them.
        return hmac.new(self.salt, value.encode(), hashlib.sha256).hexdigest()[:32]

    def fact(self, fact: Fact, tag: str = "span") -> str:
        when = f'<span class="date">{self.day(fact.on)}</span> ' if fact.on else ""
        return (
            f'<{tag} class="fact" data-fact data-source-sha256="{escape(fact.sha256 or "")}" '
            f'data-source-locator="{escape(self.locator(fact.locator))}">{when}'
            f"{escape(fact.text)}</{tag}>"
        )

    def facts(self, facts: list[Fact], empty: str) -> str:
        if not facts:
            return f'<p class="missing">{escape(empty)}</p>'
        return "".join(self.fact(f, "div") for f in facts)


def render(packet: Packet, *, identified: bool, shift_days: int, salt: bytes) -> str:
    """The packet's HTML. `shift_days` and `salt` serve the de-identified variant."""
    w = _Writer(packet, identified, shift_days, salt)
    title = "Tumor board packet" + ("" if identified else " (de-identified)")
    who = (
        "".join(
            f"<tr><th>{escape(k)}</th><td>{w.fact(v)}</td></tr>" for k, v in packet.identity.items()
        )
        if identified
        else f"<tr><th>Research key</th><td>{escape(packet.research_key)}</td></tr>"
    )
    header_rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{w.fact(v)}</td></tr>"
        for k, v in packet.header.items()
        if identified or k != "Site"
    )
    parts = [
        f'<section id="header"><h1>{title}</h1><p>Meeting <span class="date">{w.day(packet.meeting)}</span></p>'
        f'<p class="banner">{escape(DISCLAIMER)}</p><table>{who}{header_rows}</table></section>',
        '<section id="diagnosis"><h2>Diagnosis, histology, stage, ECOG, lines of therapy</h2>'
        + w.facts(packet.diagnosis, "No NSCLC diagnosis recorded by the meeting date.")
        + "<h3>Lines of therapy</h3>"
        + w.facts(packet.therapy, "No antineoplastic orders recorded.")
        + "</section>",
        '<section id="timeline"><h2>Timeline</h2><p class="src">EHR events and affirmed note '
        "mentions; negated, hypothetical, family and uncertain mentions are left out.</p>"
        + w.facts(packet.timeline, "No dated events.")
        + "</section>",
        '<section id="molecular"><h2>Molecular findings</h2>'
        + w.facts(packet.molecular, "No tumor sequencing by the meeting date.")
        + f'<p class="src">Actionability: {escape(ACTIONABILITY_SOURCE)}</p></section>',
        '<section id="imaging"><h2>Imaging</h2>'
        + w.facts(packet.imaging, "No imaging by the meeting date.")
        + _thumbnail(w, packet)
        + "</section>",
        '<section id="risk"><h2>Risk score</h2>'
        + w.facts(packet.risk, "No published risk score.")
        + (
            f'<p class="missing">Modalities missing for the score: '
            f"{escape(', '.join(packet.risk_missing))}</p>"
            if packet.risk_missing and packet.risk
            else ""
        )
        + "</section>",
        '<section id="similar"><h2>Similar patients (aggregated outcomes)</h2>'
        + w.facts(packet.similar, "Too few profiles to compare.")
        + "</section>",
        '<section id="trials"><h2>Trial screening</h2>' + _trials(w, packet) + "</section>",
        '<section id="completeness"><h2>Data completeness</h2><table>'
        + "".join(
            f"<tr><th>{escape(m)}</th><td>"
            + (w.fact(f) if f else '<span class="missing">not found</span>')
            + f'</td><td class="src">looked in {escape(where)}</td></tr>'
            for m, f, where in packet.completeness
        )
        + "</table></section>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )


def _thumbnail(w: _Writer, packet: Packet) -> str:
    if packet.thumbnail is None:
        return '<p class="missing">No CT key slice (no decodable CT with a lesion).</p>'
    png, fact = packet.thumbnail
    data = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="key slice" width="256" height="256" src="data:image/png;base64,'
        f'{data}"><figcaption>{w.fact(fact)}</figcaption></figure>'
    )


def _trials(w: _Writer, packet: Packet) -> str:
    if not packet.trials:
        return '<p class="missing">No arm with every judged criterion met.</p>'
    out = []
    for arm in packet.trials:
        questions = "".join(f'<li class="question">{escape(q)}</li>' for q in arm["questions"])
        out.append(
            f"<h3>{escape(arm['arm'])} — {escape(arm['status'])}</h3>"
            + "".join(w.fact(f, "div") for f in arm["criteria"])
            + (f"<p>Open questions:</p><ul>{questions}</ul>" if questions else "")
        )
    return "".join(out)


def render_index(meeting: date, rows: list[tuple[str, str, str]], identified: bool) -> str:
    """The meeting's index page: one link per packet (label, file name, status)."""
    items = "".join(
        f'<li><a href="{escape(name)}">{escape(label)}</a> {escape(status)}</li>'
        for label, name, status in rows
    )
    title = f"Tumor board {meeting.isoformat() if identified else ''}".strip()
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f'<p class="banner">{escape(DISCLAIMER)}</p><ul>{items}</ul></body></html>'
    )


_TAG = re.compile(r"<[^>]+>")
_SHIFTED_DATE = re.compile(r'<span class="date">[^<]*</span>')
_STYLE_BLOCK = re.compile(r"<style>.*?</style>", re.S)


def identifiers_left(html: str, packet: Packet) -> list[str]:
    """What the de-identified tables' scans find in a de-identified packet's text: the
    detector's identifier patterns and the patient's own identifiers (the shifted dates it shows
    excepted), and any of the patient's true dates. Categories only, never the values."""
    from ..notes.deid import find_identifiers

    text = unescape(_TAG.sub(" ", _SHIFTED_DATE.sub(" ", _STYLE_BLOCK.sub(" ", html))))
    found = [f.category for f in find_identifiers(text, packet.identifiers)]
    true_dates = {f.on.isoformat() for f in _all_facts(packet) if f.on}
    true_dates |= {packet.meeting.isoformat()}
    found += ["TRUE_DATE" for d in true_dates if d in html]
    return sorted(set(found))


def _all_facts(packet: Packet) -> list[Fact]:
    facts = [*packet.identity.values(), *packet.header.values(), *packet.diagnosis]
    facts += [*packet.therapy, *packet.timeline, *packet.molecular, *packet.imaging]
    facts += [*packet.risk, *packet.similar, *(f for _, f, _ in packet.completeness if f)]
    facts += [f for arm in packet.trials for f in arm["criteria"]]
    if packet.thumbnail:
        facts.append(packet.thumbnail[1])
    return facts
