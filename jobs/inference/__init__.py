"""Using a trained model: `lact-audio transcribe | generate | serve`.

    model.py       the loaded model with the preprocessing it was trained on (features, CMVN, tokenizer)
    inputs.py      AUDIO arguments (files, folders, globs, s3://) -> audio URIs
    audio_stream.py  one recording as a stream of log-mel chunks (bounded memory, any rate/channels)
    recognizer.py  log-mel chunks -> CTC log-prob chunks: streamed (block-causal) or in windows
    alignment.py   CTC log-probs -> tokens with frame spans -> segments and words
    transcriber.py a file (or bytes) -> Transcript;   writers.py  txt / json / srt / vtt
    batch.py       a corpus on Ray Data, resumable;  serving.py  the Ray Serve deployment
    generation.py  audio continuation from a generator
"""
