# syntax=docker/dockerfile:1
# modgate's container image (docs/deployment.md). Two stages: `build` installs requirements.lock (the
# exact versions and hashes the tests ran with) and the gateway into a venv; the runtime stage copies
# only that venv onto a slim base and runs it as an unprivileged user. The image holds no model weights:
# mount a model directory (MODGATE_MODEL=/models/...) or a Hugging Face cache at $HF_HOME.
#
#   docker build -t modgate .                                        CPU: the lock's CPU torch
#   docker build -t modgate:cuda --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 \
#       --build-arg TORCH=cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#
# With TORCH=cuda the lock is installed without its torch entry and the same torch version comes from
# TORCH_INDEX instead (2.13.0+cpu in the lock: 2.13.0+cu128 there; the Makefile's TORCH=preinstalled,
# README "Installing"). A base image without Python 3.11 (the CUDA images) gets Debian's/Ubuntu's
# python3.11 in both stages.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY requirements.lock ./
RUN python3.11 -m venv /opt/modgate \
    && /opt/modgate/bin/pip install --no-cache-dir pip==26.3
RUN if [ "$TORCH" = cpu ]; then \
        /opt/modgate/bin/pip install --no-cache-dir --no-deps --require-hashes \
            --extra-index-url "$TORCH_INDEX" -r requirements.lock; \
    else \
        torch_pin="$(grep -o '^torch==[^ +]*' requirements.lock)" \
        && /opt/modgate/bin/pip install --no-cache-dir --index-url "$TORCH_INDEX" "$torch_pin" \
        && awk '/^torch==/ {skip=1; next} /^[^ #]/ {skip=0} !skip' requirements.lock > /tmp/no-torch.txt \
        && /opt/modgate/bin/pip install --no-cache-dir --no-deps --require-hashes -r /tmp/no-torch.txt; \
    fi
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY moderation ./moderation
RUN /opt/modgate/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/modgate/bin/pip check

FROM ${BASE_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 modgate \
    && useradd --system --uid 10001 --gid modgate --create-home --home-dir /home/modgate modgate
COPY --from=build /opt/modgate /opt/modgate
# Listening on every interface inside the container; the settings' defaults are loopback-only.
ENV PATH=/opt/modgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/modgate/.cache/huggingface \
    MODGATE_GRPC_ADDRESS=0.0.0.0:50051 \
    MODGATE_WEB_ADDRESS=0.0.0.0:8080 \
    MODGATE_METRICS_ADDRESS=0.0.0.0:9464 \
    MODGATE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/modgate
EXPOSE 50051 8080 9464
# A gRPC Health.Check: passes on SERVING (once the model is loaded); a draining replica refuses it
# (UNAVAILABLE), so the check fails (docs/deployment.md, "Draining").
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-m", "gateway.ops.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["modgate"]
CMD ["serve"]
