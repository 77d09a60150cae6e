"""Training on Ray Train: config schema, per-worker loop, strategies (DDP, DeepSpeed) and the
driver that ties them together (`lact-audio train`): plan -> run -> finish."""
