# Triton server with matteserve's model repository baked in. This file is the ONE place that
# names the Triton release: docker-compose.yml builds it (and mounts ./triton_repo over /models)
# and k8s/triton.yaml runs the image built from it.
#
# TRITON_TAG 26.04 ships libtorch 2.12 (Triton 26.04's PyTorch backend is built from the NGC
# PyTorch container of the same release; its version is the "PyTorch" row of release 26.04 in
# NVIDIA's Deep Learning Frameworks Support Matrix,
# https://docs.nvidia.com/deeplearning/frameworks/support-matrix/index.html ; 2.12 as reported
# by the outside deployment review, not re-checked against that page).
# Policy: the torch that exports triton_repo/*/model.pt (pyproject.toml, now 2.13.0) must equal
# this libtorch (major.minor). They differ today: bump TRITON_TAG to the first release whose
# matrix row says PyTorch 2.13, or export with torch 2.12. tests/deploy checks the two agree.
#
# Build:  docker build -f docker/triton.Dockerfile -t matteserve-triton .
ARG TRITON_TAG=26.04
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3
COPY triton_repo /models
COPY docker/triton-serve.sh /opt/matteserve/triton-serve.sh
# The NGC images' non-root `triton-server` user (uid and gid 1000); numeric so that Kubernetes'
# runAsNonRoot can check it.
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/v2/health/ready || exit 1
CMD ["/bin/sh", "/opt/matteserve/triton-serve.sh"]
