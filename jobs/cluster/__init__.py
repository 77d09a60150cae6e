"""The local multi-node stack behind `lact-audio cluster up|down|status` (head, workers, MLflow
server and S3 server as local processes)."""
