# indexer: the engine, the worker and the HTTP API in one image; `indexer` is the entrypoint.
#   docker build -t indexer .
#   docker run --rm -p 8000:8000 -v indexer-data:/data indexer serve --host 0.0.0.0 --port 8000
# docker-compose.yml runs it as two services (api, worker) against PostgreSQL, and as a Ray cluster (profile `ray`).

# ---- build: compilers live only here ---------------------------------------------------------------
FROM python:3.11-slim AS build

# hnswlib compiles from source; without this it would use -march=native and the image would only run
# on CPUs like the build machine's
ENV HNSWLIB_NO_NATIVE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, pinned, in a layer of its own (the largest, and the least often changed), from PyTorch's
# CPU-only wheel index: the default registry wheel drags in several GB of CUDA libraries. Point
# TORCH_INDEX_URL at a mirror of that index where it is not reachable.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY app ./app
# the deployed systems' packages (pyproject's `systems` extra), so the worker can run a spec naming any backend,
# and Ray (the `ray` extra), so the image is also a Ray node and the worker can use the ray executor
# (docker-compose.yml's `ray` profile); `--build-arg EXTRAS=` builds a smaller image with hnswlib and faiss only
ARG EXTRAS=systems,ray
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && pip check

# ---- runtime --------------------------------------------------------------------------------------
FROM python:3.11-slim

# wordnet-base: the `text` dataset's wordnet corpus (glosses and lexicographer categories)
RUN apt-get update \
 && apt-get install -y --no-install-recommends wordnet-base \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/venv /opt/venv
# the workbench's gallery of example specs (GET /specs/examples)
COPY examples /opt/indexer/examples

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HNSWLIB_NO_NATIVE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    INDEXER_DATA_DIR=/data \
    INDEXER_EXAMPLES_DIR=/opt/indexer/examples

# never run as root; /data (indexes, reports, caches, the default SQLite file) belongs to this user
RUN useradd --create-home --uid 10001 --user-group indexer \
 && mkdir -p /data && chown indexer:indexer /data
USER indexer
WORKDIR /home/indexer
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["indexer"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
