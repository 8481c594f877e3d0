"""Similar patients CLI: `mma similar --role R --patient RESEARCH_KEY [-k 10]
[--modalities clinical,genomics,...]` (multimodal: compared on the modalities both patients
have), or `--series UID` for series similar by imaging embedding. Through the gateway service
with your token, or `--in-process --user U`; governed and audited like any query. Decision
support: similar patients inform a clinician, they decide nothing."""

import argparse
import sys

from multimodal_assets.cli.access import add_access_arguments, gateway_client
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    probe = parser.add_mutually_exclusive_group(required=True)
    probe.add_argument("--patient", help="research key: patients similar across modalities")
    probe.add_argument("--series", help="de-identified series UID: similar imaging series")
    parser.add_argument("--modalities", help="compare only on these (comma-separated)")
    parser.add_argument("-k", type=int, default=10, help="how many to return")
    add_access_arguments(parser)
    args = parser.parse_args(argv)
    try:
        client = gateway_client(args)
        if args.series:
            found = _similar_series(client, args)
            print(found.to_pandas().to_string())
            print(f"({found.num_rows} similar series)")
            return 0
        result = _similar_patients(client, args)
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    _print(result)
    return 0


def _similar_series(client, args):
    if client is not None:
        return client.similar_series(args.role, args.series, args.k)
    from multimodal_assets.lib.ml.similarity import similar_cases

    return similar_cases(
        user=args.user,
        role=args.role,
        series_uid=args.series,
        k=args.k,
        root=config.lakehouse_root(),
    )


def _similar_patients(client, args):
    from multimodal_assets.lib.oncology.search import SimilarPatients, similar_patients

    modalities = args.modalities.split(",") if args.modalities else None
    if client is not None:
        return SimilarPatients(
            **client.similar_patients(args.role, args.patient, args.k, modalities)
        )
    return similar_patients(
        user=args.user,
        role=args.role,
        research_key=args.patient,
        k=args.k,
        modalities=modalities,
        root=config.lakehouse_root(),
    )


def _print(result) -> None:
    import pandas as pd

    print(f"patient's modalities: {', '.join(result.probe_modalities)}")
    if result.hits:
        print(pd.DataFrame(result.hits).fillna("").to_string(index=False))
    print(f"({len(result.hits)} listed, {result.hidden} not visible to this role, counted only)")
    if result.outcomes:
        o = result.outcomes
        rate = "n/a" if o["progression_rate_12m"] is None else f"{o['progression_rate_12m']:.2f}"
        print(
            f"12-month progression or death among them: {rate} "
            f"(95% CI {o['ci_low']:.2f}–{o['ci_high']:.2f}, n = {o['with_outcome']})"
        )
    for note in result.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    raise SystemExit(main())
