"""Text normalisation, char / BPE text tokenizers, μ-law and k-means audio tokenizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.audio import load_audio, resample
from pipeline.audio_tokenizer import KMeansMelTokenizer, MuLawTokenizer, load_audio_tokenizer
from pipeline.features import AudioFeatureExtractor
from pipeline.text_normalizer import normalize_text
from pipeline.text_tokenizer import BPETokenizer, CharTokenizer, OutOfVocabulary, load_text_tokenizer

TEXTS = ["the old man walked slowly to the river", "she found a small red book on the table",
         "we will meet again in the morning", "his dog didn't like the cold rain"] * 10


@pytest.mark.parametrize("raw, language, expected", [
    ("HIS DOG DIDN'T LIKE THE COLD RAIN", "en", "his dog didn't like the cold rain"),
    ("Hello, world!  It’s  “quoted” -- text...", "en", "hello world it's quoted text"),
    ("'Tis the well-known end.", "en", "tis the well known end"),
    ("Der Hund läuft schnell nach Hause.", "de", "der hund läuft schnell nach hause"),
    ("ＦＵＬＬ width", "en", "full width"),
    ("İSTANBUL", "tr", "istanbul"),
    ("THE PRICE IS 5 € TODAY 😀", "en", "the price is 5 today"),
    ("😀 🎉 ### §§ ©", "en", ""),
])
def test_normalize_text(raw, language, expected):
    assert normalize_text(raw, language) == expected


def test_char_tokenizer_round_trip_and_blank():
    tok = CharTokenizer.build(TEXTS)
    assert tok.blank_id == 0 and tok.vocab_size == len(set("".join(TEXTS))) + 1
    ids = tok.encode(TEXTS[3])
    assert 0 not in ids and max(ids) < tok.vocab_size
    assert tok.decode(ids) == TEXTS[3]
    assert tok.decode([0, *ids, 0]) == TEXTS[3]       # blanks are dropped
    with pytest.raises(OutOfVocabulary) as err:
        tok.encode("quiz")                              # q and z never occur in TEXTS
    assert err.value.chars == {"q", "z"}
    manifest = {"text_tokenizer": tok.to_manifest()}
    assert load_text_tokenizer(manifest, "/nowhere/train").encode("the dog") == tok.encode("the dog")


def test_bpe_tokenizer_trains_deterministically_and_loads(tmp_path):
    tok = BPETokenizer.train(TEXTS, vocab_size=60)
    again = BPETokenizer.train(TEXTS, vocab_size=60)
    assert tok.model_proto == again.model_proto
    ids = tok.encode(TEXTS[0])
    assert 0 not in ids and len(ids) < len(TEXTS[0])   # merges happened
    assert tok.decode(ids) == TEXTS[0]
    assert tok.blank_id == 0 and tok.sp.id_to_piece(0) == "<pad>"
    with pytest.raises(OutOfVocabulary):
        tok.encode("quiz")
    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "bpe.model").write_bytes(tok.model_proto)
    loaded = load_text_tokenizer({"text_tokenizer": tok.to_manifest()}, str(tmp_path / "train"))
    assert loaded.encode(TEXTS[1]) == tok.encode(TEXTS[1]) and loaded.vocab_size == tok.vocab_size


def test_mulaw_is_8_bit_at_its_rate_and_decodes_exactly():
    t = torch.arange(16000) / 16000
    wave = 0.5 * torch.sin(2 * torch.pi * 220 * t)
    tok = MuLawTokenizer()                                   # 4 kHz, 256 levels
    codes = tok.encode(wave)
    assert codes.dtype == torch.long and codes.shape == (4000,) and 0 <= codes.min() and codes.max() < 256
    decoded = tok.decode(codes)
    assert tok.sample_rate == 4000 and decoded.shape == (4000,)
    # decode is exact: re-encoding the decoded waveform gives the same codes ...
    assert torch.equal(MuLawTokenizer(rate_hz=4000, input_sample_rate=4000).encode(decoded), codes)
    # ... and close to the (downsampled) input: 8-bit μ-law error stays small.
    reference = torch.from_numpy(resample(wave.numpy(), 16000, 4000))
    assert (decoded - reference).abs().max() < 0.02
    assert load_audio_tokenizer({"audio_tokenizer": tok.to_manifest()}, "/x/train").rate_hz == 4000


def test_kmeans_tokenizer_on_real_speech(realspeech_dir, tmp_path):
    flacs = sorted((realspeech_dir / "LibriSpeech").rglob("*.flac"))[:3]
    fe = AudioFeatureExtractor()
    feats = [fe(load_audio(str(f)).waveform) for f in flacs]
    tok = KMeansMelTokenizer.fit(np.concatenate(feats), vocab_size=32, seed=0, feature_config=fe.config())
    assert tok.vocab_size == 32 and tok.rate_hz == 100
    again = KMeansMelTokenizer.fit(np.concatenate(feats), vocab_size=32, seed=0, feature_config=fe.config())
    np.testing.assert_array_equal(tok.codebook, again.codebook)
    wave = torch.from_numpy(load_audio(str(flacs[0])).waveform)
    codes = tok.encode(wave)
    assert codes.shape == (feats[0].shape[0],) and len(set(codes.tolist())) > 8
    # Quantising to the codebook is much closer than the global mean frame.
    quantised = tok.codebook[codes.numpy()]
    assert np.abs(quantised - feats[0]).mean() < 0.5 * np.abs(feats[0] - feats[0].mean(0)).mean()
    decoded = tok.decode(codes[:200])
    assert decoded.shape[0] == pytest.approx(199 * 160, abs=400) and torch.isfinite(decoded).all()
    # The Griffin-Lim waveform has the mel envelope of its tokens.
    redone = fe(decoded.numpy())[: 200]
    assert np.abs(redone - quantised[:200]).mean() < 1.0
    (tmp_path / "tokenizers").mkdir()
    (tmp_path / "tokenizers" / "kmeans_codebook.npy").write_bytes(tok.to_bytes())
    manifest = {"audio_tokenizer": tok.to_manifest(), "feature": fe.config()}
    loaded = load_audio_tokenizer(manifest, str(tmp_path / "train"))
    assert torch.equal(loaded.encode(wave), codes)
