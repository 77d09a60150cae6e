"""The preprocessing stages, one file each: config → plan → shard_runner (shard_worker on Ray) → finish.

`pipeline.preprocess.run_preprocess` strings them together; start reading there.
"""
