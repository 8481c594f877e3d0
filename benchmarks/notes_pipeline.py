"""Notes pipeline throughput against spaCy's tokenizer alone on the same notes, in one process
and in two, and the de-identifier.

Usage: python benchmarks/notes_pipeline.py [--patients 1500] [--repeat 3]
Generates the synthetic notes of `--patients` patients (three lexically varied notes each), then
times in the same run, each figure in its own process (its own peak memory): the blank English
tokenizer over every note, the full pipeline (`notes_nlp.analyze`: line-aware sentences, entity
ruler, NegEx, ConText modifiers, sections, dates) in one process and split over two worker
processes that return plain tuples, and `notes_deid.find_identifiers`.
"""

import argparse
import tempfile
import time
from pathlib import Path

from measure import best_of, isolated, peak_mib


def _texts(patients: int) -> list[str]:
    from multimodal_assets.lib import notes
    from multimodal_assets.lib.synthetic.cohort import draw_cohort
    from multimodal_assets.lib.synthetic.notes import render_notes

    landing = Path(tempfile.mkdtemp(prefix="mm-notes-bench-")) / "notes"
    deliveries, _, _ = render_notes(draw_cohort(patients, 5), 5, landing)
    return [
        notes.parse_note_file((landing.parent / d["path"]).read_bytes())[0]["text"]
        for d in deliveries
    ]


def _tokenizer(texts: list[str]) -> tuple[float, int, float]:
    import spacy

    nlp = spacy.blank("en")
    start = time.perf_counter()
    words = sum(sum(1 for t in nlp.make_doc(text) if not t.is_space) for text in texts)
    return time.perf_counter() - start, words, peak_mib()


def _analyze(texts: list[str]) -> list[tuple]:
    from multimodal_assets.lib.notes import nlp as notes_nlp

    return [tuple(m) for text in texts for m in map(_plain, notes_nlp.analyze(text))]


def _plain(mention) -> tuple:
    return (mention.start, mention.end, mention.label, mention.concept, mention.negated)


def _pipeline(texts: list[str], workers: int) -> tuple[float, int, float]:
    from multimodal_assets.lib.notes import nlp as notes_nlp
    from multimodal_assets.lib.platform.parallel import map_in_processes

    notes_nlp.pipeline()  # built once per process; not part of the timing
    start = time.perf_counter()
    if workers == 1:
        found = len(_analyze(texts))
    else:
        half = len(texts) // 2
        found = sum(
            len(r) for r in map_in_processes(_analyze, [(texts[:half],), (texts[half:],)], 2)
        )
    return time.perf_counter() - start, found, peak_mib()


def _deidentify(texts: list[str]) -> tuple[float, int, float]:
    from multimodal_assets.lib.notes.deid import find_identifiers

    start = time.perf_counter()
    spans = sum(len(find_identifiers(text)) for text in texts)
    return time.perf_counter() - start, spans, peak_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure; the fastest is kept"
    )
    args = parser.parse_args()
    texts = isolated(_texts, args.patients)
    chars = sum(len(t) for t in texts)
    tokenizer, words, tok_peak = best_of(args.repeat, _tokenizer, texts)
    one, mentions, one_peak = best_of(args.repeat, _pipeline, texts, 1)
    two, mentions_two, two_peak = best_of(args.repeat, _pipeline, texts, 2)
    deid, spans, deid_peak = best_of(args.repeat, _deidentify, texts)
    assert mentions == mentions_two
    n = len(texts)
    print(
        f"{n:,} notes, {words:,} words, {chars / 1e6:.1f} M characters "
        f"(each figure the fastest of {args.repeat} runs)"
    )
    print(
        f"spaCy tokenizer alone         {n / tokenizer:8.0f} notes/s {words / tokenizer:9.0f} "
        f"words/s   1.0x   (peak {tok_peak:.0f} MiB)"
    )
    print(
        f"full pipeline, 1 process      {n / one:8.0f} notes/s {words / one:9.0f} words/s "
        f"{one / tokenizer:5.1f}x   {mentions:,} mentions (peak {one_peak:.0f} MiB)"
    )
    print(
        f"full pipeline, 2 processes    {n / two:8.0f} notes/s {words / two:9.0f} words/s "
        f"{two / tokenizer:5.1f}x   {one / two:.2f}x one process (peak {two_peak:.0f} MiB)"
    )
    print(
        f"de-identifier (patterns)      {n / deid:8.0f} notes/s {words / deid:9.0f} words/s "
        f"          {spans:,} spans (peak {deid_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
