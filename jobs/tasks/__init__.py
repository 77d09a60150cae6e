"""The two model families as task objects: what each reads, its loss, decoding, counts and score.

Everything that differs between ASR and audio-token generation lives in this package, so the
engines ask `task.loss(...)`, `task.score(...)` instead of comparing task names: what its batches
carry (`content`, pipeline.split_reader), its model classes (`models`, models/factory.py), and the
names of what `lact-audio evaluate` runs and shows for it (`evaluation_steps`, `report_sections`,
`paired_sections`, `study_pooling`; the engines hold those by name). A config's
`task:` string becomes its object once, when the config loads (`task_named`).

    asr.py          CTC loss, greedy decoding, CER/WER counts
    generation.py   next-token NLL, bits per token
    spec_augment.py SpecAugment for ASR training
    scoring.py      a whole split scored with a task in one process
"""

from __future__ import annotations

from jobs.tasks.asr import ASRTask
from jobs.tasks.generation import GenerationTask
from pipeline.errors import UserError

Task = ASRTask | GenerationTask
ASR, GENERATION = ASRTask(), GenerationTask()
TASKS: dict[str, Task] = {task.name: task for task in (ASR, GENERATION)}


def task_named(name) -> Task:
    """The task object for a config's `task:` value (an object passes through)."""
    if not isinstance(name, str):
        return name
    if name not in TASKS:
        raise UserError(f"config key 'task': {name!r} is not one of {list(TASKS)}")
    return TASKS[name]
