# memorywatch exporter image: docker build -t memorywatch:0.2.0 .
# Python 3.11 on Debian 12, the versions the test suite runs on. The build stage installs the
# package with its command (the exporter extra, no dev extras) into a venv; the runtime stage
# gets only that venv, no source tree. The build needs setup.py and runbooks/: setup.py copies
# the runbooks into the package, which `memorywatch runbook` and /runbooks/NAME serve.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src ./src
COPY runbooks ./runbooks
RUN python -m venv /opt/memorywatch \
    && /opt/memorywatch/bin/pip install ".[exporter]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="memorywatch" \
      org.opencontainers.image.description="Prometheus exporter for Redis holding AI agent memory" \
      org.opencontainers.image.source="https://github.com/memorywatch/memorywatch" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 memorywatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin memorywatch
COPY --from=build /opt/memorywatch /opt/memorywatch
ENV PATH=/opt/memorywatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9121
# No curl in slim: ask /healthz with the interpreter the image already has.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9121/healthz', timeout=3)"]
ENTRYPOINT ["memorywatch"]
CMD ["exporter", "--listen", "0.0.0.0:9121"]
