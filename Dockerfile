# The orchestrator image: one image for every role (worker, beat, flower, metrics, sandbox),
# chosen by the command, e.g. `docker run IMAGE worker`. See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs; .dockerignore keeps the rest (venv, tests, .env) out.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
# The installed package is all the image keeps: no source tree, no build leftovers.
RUN pip install . \
    && cd / \
    && rm -rf /src

# A fixed uid so mounted files (e.g. KRTC_STORAGE_PROFILES) can be made readable to it alone.
RUN groupadd --system --gid 10001 krtc \
    && useradd --system --uid 10001 --gid krtc --create-home --home-dir /home/krtc \
        --shell /usr/sbin/nologin krtc
USER krtc
WORKDIR /home/krtc

ENTRYPOINT ["krtc-rec"]
CMD ["--help"]
