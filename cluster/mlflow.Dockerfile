# MLflow tracking server at the pinned MLflow version, with the PostgreSQL driver and boto3 (S3
# artifacts) that the upstream image leaves out.
#   docker build -f cluster/mlflow.Dockerfile -t ghcr.io/lact-audio/mlflow:3.17.2 cluster
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir psycopg2-binary==2.9.* boto3==1.43.117
