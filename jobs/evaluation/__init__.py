"""The evaluation suites behind `lact-audio evaluate` (jobs/commands/evaluate.py is the thin CLI).

One file per concept:
    data.py               a split's utterances in speaker order (features after CMVN, text, ids)
    limits.py             run a measurement under a time limit; out-of-memory becomes a status
    measure.py            wall time, peak memory and FLOPs of one call
    accuracy.py           CER/WER overall, per speaker, per language; greedy and beam decoding
    recordings.py         long recordings and sessions joined from one chapter's utterances
    long_form.py          recordings decoded in one pass and segmented, per length
    context_gain.py       CER segmented - CER one pass, with its paired interval over recordings
    training_condition.py what a model was trained on (utterances or sessions), from its run config
    streaming.py          streaming against offline decoding of block-causal models
    adaptation.py         sessions in one pass and streamed; chained state where trained so
    ablation.py           CER with every fast-weight update skipped
    quantized.py          dynamic INT8 linear layers (and FP16 where CUDA exists)
    efficiency.py         latency, memory, real-time factor and FLOPs against input length
    generation_quality.py per-position NLL, tokenizer PESQ/STOI, continuation samples
    position_nll.py       generator NLL by position bin on long single-speaker sequences
    report.py             report.md with tables and PNG plots
    suite.py              runs the suites for every model and writes metrics.json + report
    demo_comparison.py    the demo's last stage: the full suite, sized to its data and budget
"""
