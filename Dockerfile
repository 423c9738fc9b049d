# A GPU host's hushkit: CUDA runtime, Python 3.11, torch's CUDA build, hushkit with the pipeline, orchestration and
# baselines extras, and this checkout (git history included: DVC needs it). Build and run (docs/team.md):
#   docker build -t hushkit:gpu .
#   docker run --gpus all -e MLFLOW_TRACKING_URI=http://mlflow.internal:5000 hushkit:gpu          # make repro
#   docker run --gpus all -v "$PWD:/workspace" hushkit:gpu make repro                              # on a checkout
# The Prefect docker work pool (prefect.yaml, retrain-gpu) runs the retrain flow in this image.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# git for DVC, make for `make repro`, ca-certificates for the remote and the registry, libgomp for torch on CPU.
# Ubuntu's package versions move with its security updates: pinning them would break the build, not fix it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git make libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# uv provides Python 3.11 (Ubuntu 24.04 ships 3.12) and installs faster than pip; the venv is seeded with pip
# so `make setup` can top it up when pyproject.toml changes in a mounted checkout.
COPY --from=ghcr.io/astral-sh/uv:0.8.0 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    MLFLOW_DISABLE_TELEMETRY=true \
    DVC_NO_ANALYTICS=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
RUN uv venv --seed --python 3.11 /opt/venv

# torch first, from PyPI: on Linux x86_64 its wheel is the CUDA build (it brings its CUDA libraries; the base image
# supplies the driver interface). TORCH_INDEX_URL picks another build, e.g. https://download.pytorch.org/whl/cu128.
ARG TORCH_INDEX_URL=https://pypi.org/simple
RUN uv pip install --python /opt/venv/bin/python --no-cache --index-url "$TORCH_INDEX_URL" "torch==2.13.*"

WORKDIR /workspace
COPY . /workspace
# The Makefile's setup stamp, newer than pyproject.toml: `make repro` uses this venv as it is.
RUN uv pip install --python /opt/venv/bin/python --no-cache -e ".[pipeline,orchestration,baselines]" \
    && touch /opt/venv/.installed

CMD ["make", "repro"]
