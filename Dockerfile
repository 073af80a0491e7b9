# The orchestrator image: one image for every role (worker, beat, flower, metrics, sandbox),
# chosen by the command, e.g. `docker run IMAGE worker`. See docker-compose.yml.
# Pinned to a patch release (and the Debian release under it); bump it on purpose.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs; .dockerignore keeps the rest (venv, tests, .env) out.
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY orchestrator ./orchestrator
COPY workers ./workers
# Every role runs from this image, Flower and the sandbox included, at the exact versions of
# constraints.txt (`make constraints`). The installed package is all the image keeps: no source
# tree, no build leftovers.
RUN pip install --constraint constraints.txt '.[flower,sandbox]' \
    && cd / \
    && rm -rf /src

# A fixed uid so mounted files (e.g. KRTC_STORAGE_PROFILES) can be made readable to it alone.
RUN groupadd --system --gid 10001 krtc \
    && useradd --system --uid 10001 --gid krtc --create-home --home-dir /home/krtc \
        --shell /usr/sbin/nologin krtc
USER krtc
WORKDIR /home/krtc

# The role's own check: a worker answers a ping, beat's reconcile rounds are recent; the other
# roles pass (docker-compose.yml gives them a port check). Exit 0 or 1, one line why.
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["krtc-rec", "healthcheck"]

ENTRYPOINT ["krtc-rec"]
CMD ["--help"]
