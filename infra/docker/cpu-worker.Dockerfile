# CPU worker: the flows on CPU (transformers engine), with the Ray and Dask task runners.
#   docker build -f infra/docker/cpu-worker.Dockerfile -t bioner-cpu .
#   docker run -e PREFECT_API_URL=http://prefect:4200/api bioner-cpu
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    BIONER_CACHE_DIR=/var/cache/bioner \
    HF_HUB_OFFLINE=1

WORKDIR /opt/bioner
COPY requirements/ requirements/
COPY pyproject.toml README.md prefect.yaml ./
COPY bioner/ bioner/
COPY schemas/ schemas/
COPY infra/ infra/
COPY tasks/ tasks/
COPY flows/ flows/

# torch's CPU build first (the default index serves the CUDA one), then the pinned stack.
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        "torch==$(sed -n 's/^torch==//p' requirements/cpu-constraints.txt)" \
 && pip install -c requirements/cpu-constraints.txt -e ".[llm,s3,scale]"

CMD ["prefect", "worker", "start", "--pool", "bioner-cpu", "--type", "process"]
