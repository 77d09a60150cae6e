"""The evaluation suites behind `lact-audio evaluate` (jobs/evaluate.py is the thin CLI).

One file per concept:
    data.py               a split's utterances in speaker order (features after CMVN, text, ids)
    limits.py             run a measurement under a time limit; out-of-memory becomes a status
    measure.py            wall time, peak memory and FLOPs of one call
    accuracy.py           CER/WER overall, per speaker, per language; greedy and beam decoding
    long_form.py          recordings joined from one speaker's utterances, decoded in one pass
    streaming.py          streaming against offline decoding of block-causal models
    adaptation.py         fast-weight state carried across a speaker's utterances
    ablation.py           CER with every fast-weight update skipped
    quantized.py          dynamic INT8 linear layers (and FP16 where CUDA exists)
    efficiency.py         latency, memory, real-time factor and FLOPs against input length
    generation_quality.py NLL against context length, tokenizer PESQ/STOI, continuation samples
    report.py             report.md with tables and PNG plots
    suite.py              runs the suites for every model and writes metrics.json + report
    demo_comparison.py    the demo's last stage: the full suite, sized to its data and budget
"""
