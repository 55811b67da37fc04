# The moerge image: coordinator and contributor apps, with the default base model inside.
FROM python:3.11-slim

# Point this at a CPU wheel index to keep the image small (torch==2.13.0 is pinned).
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    HF_HUB_OFFLINE=1 \
    MOERGE_DATA_DIR=/data \
    MOERGE_GRPC_HOST=0.0.0.0 \
    MOERGE_POOLS_DIR=/app/experiments/pools

WORKDIR /app
COPY pyproject.toml README.md ./
COPY moerge ./moerge
COPY coordinator ./coordinator
COPY contributor ./contributor
COPY migrations ./migrations
COPY experiments ./experiments
RUN pip install . && useradd --create-home --uid 1000 moerge && mkdir -p /data && chown moerge /data

USER moerge
VOLUME ["/data"]
EXPOSE 50051
CMD ["moerge-coordinator", "serve", "--grpc-port", "50051"]
