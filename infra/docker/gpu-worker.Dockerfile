# GPU worker: generation with vLLM (requirements/gpu-worker.txt), Ray for placement.
#   docker build -f infra/docker/gpu-worker.Dockerfile -t bioner-gpu .
#   docker run --gpus all --shm-size 8g -e PREFECT_API_URL=http://prefect:4200/api \
#       -e BIONER_RUNNER_ADDRESS=ray://ray-head:10001 -v /models:/models:ro bioner-gpu
# The host needs the NVIDIA driver and container toolkit; vLLM's wheels bring CUDA's libraries.
# vLLM is never installed next to the CPU constraints (it pins its own torch build).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    BIONER_CACHE_DIR=/var/cache/bioner \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    RAY_USAGE_STATS_ENABLED=0

WORKDIR /opt/bioner
COPY requirements/ requirements/
COPY pyproject.toml README.md prefect.yaml ./
COPY bioner/ bioner/
COPY schemas/ schemas/
COPY infra/ infra/
COPY tasks/ tasks/
COPY flows/ flows/

RUN pip install -r requirements/gpu-worker.txt \
 && pip install -e ".[scale]" "prefect==3.8.8" "fastapi<0.151"

# One flow run at a time per worker; tasks tagged `gpu` are further limited by the server's
# `gpu` tag concurrency limit, and Ray gives each generate task one GPU.
CMD ["prefect", "worker", "start", "--pool", "bioner-gpu", "--type", "process", "--limit", "1"]
