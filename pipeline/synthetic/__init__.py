"""Synthetic speech corpora from espeak-ng in the real LibriSpeech and Common Voice layouts.

    from pipeline.synthetic import synthesize_corpus
    summary = synthesize_corpus("librispeech", "runs/data/LibriSpeech", hours=0.1, seed=0)
    summary = synthesize_corpus("commonvoice", "s3://bucket/cv", utterances_per_split=3, languages=["en", "de"])
"""

from pipeline.synthetic.corpus import LAYOUTS, synthesize_corpus
from pipeline.synthetic.languages import LANGUAGES

__all__ = ["LAYOUTS", "LANGUAGES", "synthesize_corpus"]
