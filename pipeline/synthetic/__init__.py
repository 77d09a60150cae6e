"""Synthetic speech corpora from espeak-ng (and optionally Festival) in the real LibriSpeech and
Common Voice layouts, clean or recorded in drawn acoustic conditions.

    from pipeline.synthetic import synthesize_corpus
    summary = synthesize_corpus("librispeech", "runs/data/LibriSpeech", hours=0.1, seed=0)
    summary = synthesize_corpus("commonvoice", "s3://bucket/cv", utterances_per_split=3, languages=["en", "de"])
    summary = synthesize_corpus("librispeech", "runs/data/long", hours=3, conditions=True,
                                voicing=Voicing(engines=("espeak-ng", "festival"), held_out_engines=("festival",),
                                                test_minutes_per_chapter=10))
"""

from pipeline.synthetic.corpus import LAYOUTS, synthesize_corpus
from pipeline.synthetic.languages import LANGUAGES
from pipeline.synthetic.plan import Voicing
from pipeline.synthetic.speakers import parse_engines

__all__ = ["LAYOUTS", "LANGUAGES", "Voicing", "parse_engines", "synthesize_corpus"]
