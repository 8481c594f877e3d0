"""Fake identities (names, addresses, phones) for synthetic patients: PHI-shaped, not real."""

from __future__ import annotations

import numpy as np

GIVEN_FEMALE = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty "
    "Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah "
    "Stephanie Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela "
    "Nicole Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather "
    "Mei Aiko Priya Fatima Lucia Ingrid Amara Yuki Sofia Olga"
).split()
GIVEN_MALE = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel "
    "Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy "
    "Ronald Jason Edward Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin "
    "Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry "
    "Wei Hiroshi Arjun Omar Mateo Lars Kwame Takeshi Diego Ivan"
).split()
FAMILY = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson Whitfield Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Okafor Tanaka "
    "Kowalski Haddad Lindqvist Mensah Yamamoto Castillo Petrov Chen Patel Schmidt Rossi"
).split()
STREETS = (
    "Maple Oak Pine Cedar Elm Washington Lake Hill Park Main Church Spring Ridge Meadow Sunset "
    "Highland Forest River Willow Chestnut"
).split()
STREET_KINDS = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way", "Blvd")
# (city, state, 3-digit ZIP prefix)
CITIES = (
    ("Boston", "MA", "021"),
    ("Worcester", "MA", "016"),
    ("Springfield", "MA", "011"),
    ("Providence", "RI", "029"),
    ("Hartford", "CT", "061"),
    ("Albany", "NY", "122"),
    ("Burlington", "VT", "054"),
    ("Portland", "ME", "041"),
    ("Manchester", "NH", "031"),
    ("New Haven", "CT", "065"),
    ("Lowell", "MA", "018"),
    ("Cambridge", "MA", "021"),
)


def draw_identities(rng: np.random.Generator, sexes: np.ndarray) -> dict[str, list]:
    """Names, address and phone for each patient, drawn from the generator's stream."""
    n = len(sexes)
    female_idx = rng.integers(0, len(GIVEN_FEMALE), n)
    male_idx = rng.integers(0, len(GIVEN_MALE), n)
    middle_idx = rng.integers(0, len(GIVEN_MALE), n)
    family_idx = rng.integers(0, len(FAMILY), n)
    relative_idx = rng.integers(0, len(GIVEN_FEMALE), n)
    house = rng.integers(1, 9999, n)
    street_idx = rng.integers(0, len(STREETS), n)
    kind_idx = rng.integers(0, len(STREET_KINDS), n)
    city_idx = rng.integers(0, len(CITIES), n)
    zip_tail = rng.integers(0, 100, n)
    exchange = rng.integers(200, 999, n)
    line = rng.integers(0, 10000, n)
    area = rng.choice(np.array([617, 508, 413, 401, 860, 518, 802, 207, 603, 781]), n)
    out: dict[str, list] = {
        k: []
        for k in (
            "given_name",
            "family_name",
            "relative_name",
            "address_line",
            "city",
            "state",
            "postal_code",
            "phone",
        )
    }
    for i in range(n):
        given = GIVEN_FEMALE[female_idx[i]] if sexes[i] == "female" else GIVEN_MALE[male_idx[i]]
        out["given_name"].append(f"{given} {GIVEN_MALE[middle_idx[i]][0]}.")
        out["family_name"].append(FAMILY[family_idx[i]])
        out["relative_name"].append(f"{GIVEN_FEMALE[relative_idx[i]]} {FAMILY[family_idx[i]]}")
        out["address_line"].append(
            f"{house[i]} {STREETS[street_idx[i]]} {STREET_KINDS[kind_idx[i]]}"
        )
        city, state, zip3 = CITIES[city_idx[i]]
        out["city"].append(city)
        out["state"].append(state)
        out["postal_code"].append(f"{zip3}{zip_tail[i]:02d}")
        out["phone"].append(f"({area[i]}) {exchange[i]}-{line[i]:04d}")
    return out
