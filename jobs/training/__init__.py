"""Training on Ray Train: config schema, per-worker loop, strategies (DDP, DeepSpeed), checkpoints,
evaluation, MLflow tracking and the driver that ties them together (`lact-audio train`)."""
