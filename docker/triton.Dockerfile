# Triton server with matteserve's model repository baked in (for Kubernetes; docker-compose
# mounts ./triton_repo instead). The tag must ship a libtorch at least as new as the torch
# that exported the TorchScript files (torch 2.13.0): check NVIDIA's framework support matrix.
# Build:  docker build -f docker/triton.Dockerfile --build-arg TRITON_TAG=26.04 -t matteserve-triton .
ARG TRITON_TAG=26.04
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3
COPY triton_repo /models
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/v2/health/ready || exit 1
CMD ["tritonserver", "--model-repository=/models", "--strict-model-config=true", "--exit-on-error=false"]
