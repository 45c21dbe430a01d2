#!/bin/sh
# matteserve's tritonserver command line: the one copy of the flags. docker/triton.Dockerfile
# runs it, so docker-compose.yml and k8s/triton.yaml (which build/run that image) get the same.
#
# TRITON_ADMIN_KEY (required) guards the administrative APIs: model repository (load/unload),
# model configuration, shared-memory registration, statistics, trace and logging answer only
# requests carrying the header `triton-admin-key: <TRITON_ADMIN_KEY>`. The API needs none of
# them: it uses inference and health (server/model ready), which stay open to the pods the
# NetworkPolicy lets in. Flag syntax: Triton's "Limit Endpoint Access" guide,
# https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/customization_guide/inference_protocols.html#limit-endpoint-access-beta
set -eu

key="${TRITON_ADMIN_KEY:-}"
case "$key" in
    "" | CHANGE-ME*)
        echo "triton-serve: TRITON_ADMIN_KEY is unset or still the placeholder; create it (k8s/secret.yaml says how)" >&2
        exit 64
        ;;
    *[!A-Za-z0-9_-]*)
        # ',', ':' and '=' would break the flag's <apis>:<key>=<value> syntax.
        echo "triton-serve: TRITON_ADMIN_KEY may hold only letters, digits, '-' and '_' (openssl rand -hex 32)" >&2
        exit 64
        ;;
esac
if [ "${#key}" -lt 32 ]; then
    echo "triton-serve: TRITON_ADMIN_KEY is shorter than 32 characters (openssl rand -hex 32)" >&2
    exit 64
fi

ADMIN_APIS="model-repository,model-config,shared-memory,statistics,trace,logging"

# --disable-auto-complete-config replaces the deprecated strict-model-config option: every
# model needs its config.pbtxt, nothing is filled in from the model file.
exec tritonserver \
    --model-repository=/models \
    --disable-auto-complete-config \
    --model-control-mode=none \
    --exit-on-error=false \
    --grpc-restricted-protocol="${ADMIN_APIS}:triton-admin-key=${key}" \
    --http-restricted-api="${ADMIN_APIS}:triton-admin-key=${key}" \
    "$@"
