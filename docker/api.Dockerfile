# matteserve API image: slim, non-root, health-checked.
# Build from the repository root:  docker build -f docker/api.Dockerfile -t matteserve-api .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU build of torch: the API encodes prompts (MiniLM) and pre/post-processes; with
# MATTESERVE_BACKEND=triton the networks run on the Triton server.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md /src/
COPY schemas /src/schemas
COPY service /src/service
COPY models /src/models
RUN pip install /src

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app matteserve
COPY --from=build /opt/venv /opt/venv
# config.pbtxt files tell the API which networks are trained; the model.pt files let the same
# image run MATTESERVE_BACKEND=local without a Triton server.
COPY triton_repo /app/triton_repo
ENV PATH=/opt/venv/bin:$PATH \
    MATTESERVE_HOST=0.0.0.0 \
    MATTESERVE_PORT=8000 \
    MATTESERVE_MODEL_REPOSITORY=/app/triton_repo \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    NUMBA_CACHE_DIR=/tmp/numba
WORKDIR /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["matteserve", "serve"]
