"""Corpus readers on the real LibriSpeech / Common Voice files, on the bad-input fixture corpus,
and on the same trees served by a real S3 API server."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.readers import read_corpus, read_commonvoice, read_librispeech
from pipeline.records import Rejection, Utterance
from tests.fixtures.bad_corpus import build_bad_commonvoice, build_bad_librispeech


def split_records(records):
    utterances = [r for r in records if isinstance(r, Utterance)]
    rejections = [r for r in records if isinstance(r, Rejection)]
    assert len(utterances) + len(rejections) == len(records)
    return utterances, rejections


def test_real_librispeech(realspeech_dir):
    root = realspeech_dir / "LibriSpeech"
    utterances, rejections = split_records(list(read_librispeech(str(root))))
    assert rejections == []
    assert len(utterances) == 60
    assert Counter(u.split for u in utterances) == {"dev-clean": 52, "test-clean": 8}
    by_id = {u.utt_id: u for u in utterances}
    assert by_id["1272-128104-0000"].text.startswith("MISTER QUILTER IS THE APOSTLE")
    assert by_id["1089-134686-0000"].speaker == "1089"
    for u in utterances:
        assert Path(u.audio_uri).is_file() and u.audio_uri.endswith(f"/{u.utt_id}.flac")
        assert (u.language, u.corpus) == ("en", "librispeech")
    with pytest.raises(UserError, match="did you mean .*/LibriSpeech"):
        read_librispeech(str(realspeech_dir))
    only_test = list(read_corpus("librispeech", str(root), splits=["test-clean"]))
    assert {r.split for r in only_test} == {"test-clean"} and len(only_test) == 8


def test_real_commonvoice(realspeech_dir):
    root = realspeech_dir / "CommonVoice"
    # The real file is a subset named validated_subset.tsv, so it has to be asked for by name.
    with pytest.raises(UserError, match="no train/dev/test/validated"):
        read_commonvoice(str(root))
    with pytest.raises(UserError, match="did you mean .*/CommonVoice"):
        read_commonvoice(str(realspeech_dir))
    for where in (root, root / "en"):  # the release root or one language directory
        (utt,) = read_corpus("commonvoice", str(where), splits=["validated_subset"])
        assert utt.utt_id == "en/common_voice_en_651325"
        assert utt.text == "Every purchase is a vote."
        assert utt.language == "en" and utt.split == "validated_subset"
        assert utt.speaker.startswith("a1ebe683") and Path(utt.audio_uri).is_file()


@pytest.mark.parametrize("build", [build_bad_librispeech, build_bad_commonvoice])
def test_reader_level_defects_are_rejected_with_reasons(tmp_path, build):
    corpus = build(tmp_path / "corpus")
    utterances, rejections = split_records(list(read_corpus(corpus.corpus, str(corpus.root))))
    rejected = {}
    for r in rejections:
        assert rejected.setdefault(r.utt_id, r.reason) == r.reason
        assert r.detail
    assert rejected == corpus.reader_reasons
    # Everything else is passed on for preprocessing to decode (the reader opens no audio, so a
    # zero-byte or truncated file is still an Utterance here).
    passed = {u.utt_id for u in utterances}
    assert len(passed) == len(utterances)
    expected = set(corpus.good) | set(corpus.repairable) | set(corpus.either) | (
        set(corpus.rejected) - set(corpus.reader_reasons))
    assert passed == expected
    assert all(Path(u.audio_uri).exists() for u in utterances)
    # The duplicated id is rejected in every occurrence.
    duplicated = [k for k, v in corpus.reader_reasons.items() if v == "duplicate_utt_id"]
    assert duplicated and all(sum(r.utt_id == d for r in rejections) == 2 for d in duplicated)


def test_librispeech_rejection_details(tmp_path):
    corpus = build_bad_librispeech(tmp_path / "ls")
    by_id = {r.utt_id: r for r in read_librispeech(str(corpus.root)) if isinstance(r, Rejection)}
    assert "no trans.txt" in by_id["101-1001-0000"].detail
    assert by_id["100-1000-0019"].audio_uri.endswith("100-1000-0019.flac")
    assert "GARBAGE LINE" in next(r.detail for r in by_id.values() if r.reason == "malformed_row")
    # NaN/Inf rows are float WAV files: read as audio of the layout, .flac preferred when both exist.
    nan = next(u for u in read_librispeech(str(corpus.root)) if u.utt_id == "100-1000-0007")
    assert nan.audio_uri.endswith(".wav")
    shutil.copy(corpus.root / "train-clean-100/100/1000/100-1000-0000.flac",
                corpus.root / "train-clean-100/100/1000/100-1000-0007.flac")
    nan = next(u for u in read_librispeech(str(corpus.root)) if u.utt_id == "100-1000-0007")
    assert nan.audio_uri.endswith(".flac")


def test_librispeech_follows_a_symlinked_speaker_directory(tmp_path):
    """Corpora on shared storage are often trees of links: a linked speaker's audio is read as if
    it were in place (fsspec's local find had listed the link itself as one file)."""
    corpus = build_bad_librispeech(tmp_path / "ls")
    split = corpus.root / "train-clean-100"
    before = {r.utt_id: type(r) for r in read_librispeech(str(corpus.root))}
    shutil.move(split / "100", tmp_path / "elsewhere-100")
    (split / "100").symlink_to(tmp_path / "elsewhere-100", target_is_directory=True)
    after = {r.utt_id: type(r) for r in read_librispeech(str(corpus.root))}
    assert after == before and any(u.startswith("100-") for u in after)


def test_commonvoice_languages_and_splits(tmp_path):
    corpus = build_bad_commonvoice(tmp_path / "cv")
    german = list(read_corpus("commonvoice", str(corpus.root), languages=["de"]))
    assert {r.utt_id for r in german} == {"de/common_voice_de_2000", "de/common_voice_de_2001"}
    assert all(r.language == "de" and r.speaker for r in german)
    dev = list(read_commonvoice(str(corpus.root), splits=["dev"]))
    assert [r.utt_id for r in dev] == ["en/common_voice_en_1004"]  # de has no dev.tsv: skipped
    validated = [r for r in read_commonvoice(str(corpus.root), splits=["validated"]) if isinstance(r, Utterance)]
    assert len(validated) > len(corpus.good)


def test_user_errors(tmp_path):
    ls = build_bad_librispeech(tmp_path / "ls")
    cv = build_bad_commonvoice(tmp_path / "cv")
    cases = [
        (lambda: read_corpus("librispeech", str(tmp_path / "nowhere")), "does not exist"),
        (lambda: read_corpus("commonvoice", str(tmp_path / "nowhere")), "does not exist"),
        (lambda: read_corpus("librispeech", str(cv.root)), "not a LibriSpeech layout"),
        (lambda: read_corpus("commonvoice", str(ls.root)), "not a Common Voice layout"),
        (lambda: read_corpus("librispeech", str(ls.root), splits=["test-clean"]), "test-clean.*not found.*available: dev-clean, train-clean-100"),
        (lambda: read_corpus("commonvoice", str(cv.root), splits=["other"]), "other.*not found"),
        (lambda: read_corpus("commonvoice", str(cv.root), languages=["fr"]), "language.*fr.*available: de, en"),
        (lambda: read_corpus("librispeech", str(ls.root), languages=["de"]), "English only"),
        (lambda: read_corpus("timit", str(ls.root)), "unknown corpus"),
        (lambda: read_corpus("librispeech", str(ls.root / "dev-clean/200/2000/200-2000.trans.txt")), "not a directory"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message):
            call()
    (cv.root / "de" / "train.tsv").write_text("client_id\tfile\ttext\n")
    with pytest.raises(UserError, match="de/train.tsv has no column.*path"):
        read_corpus("commonvoice", str(cv.root))


@pytest.mark.integration
def test_readers_on_s3_match_local(tmp_path, s3_bucket, realspeech_dir):
    from pipeline.uri import filesystem

    ls = build_bad_librispeech(tmp_path / "ls")
    cv = build_bad_commonvoice(tmp_path / "cv")
    shutil.copytree(realspeech_dir / "LibriSpeech" / "test-clean", tmp_path / "ls" / "test-clean")
    fs, bucket = filesystem(s3_bucket)
    fs.put(str(tmp_path / "ls"), f"{bucket}/corpora/LibriSpeech", recursive=True)
    fs.put(str(tmp_path / "cv"), f"{bucket}/corpora/cv", recursive=True)
    for corpus, local, remote in [
        ("librispeech", tmp_path / "ls", f"{s3_bucket}/corpora/LibriSpeech"),
        ("commonvoice", tmp_path / "cv", f"{s3_bucket}/corpora/cv/"),
    ]:
        local_records = list(read_corpus(corpus, str(local)))
        remote_records = list(read_corpus(corpus, remote))
        assert len(remote_records) == len(local_records) > 10
        for here, there in zip(local_records, remote_records):
            assert type(here) is type(there) and here.utt_id == there.utt_id and here.split == there.split
            if here.audio_uri:
                assert there.audio_uri == here.audio_uri.replace(str(local), remote.rstrip("/"))
                assert there.audio_uri.startswith(s3_bucket + "/")
        assert sum(isinstance(r, Utterance) and r.split == "test-clean" for r in remote_records) == (
            8 if corpus == "librispeech" else 0)
    (utt,) = [u for u in read_corpus("librispeech", f"{s3_bucket}/corpora/LibriSpeech", splits=["test-clean"])
              if u.utt_id == "1089-134686-0000"]
    with fs.open(utt.audio_uri) as f:
        assert f.read(4) == b"fLaC"
    with pytest.raises(UserError, match="does not exist"):
        read_corpus("librispeech", f"{s3_bucket}/missing")
