# anomstream service image: `docker build -t anomstream .`, or `docker compose up --build`.
# Runs `anomstream run` by default; any sub-command works: `docker run anomstream simulate ...`.

# Build stage: turn the source tree into a wheel, so the runtime image carries no source or
# build tooling.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 anomstream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin anomstream
# Numeric user, so orchestrators that require a non-root UID (runAsNonRoot) can verify it.
USER 10001:10001
WORKDIR /tmp
EXPOSE 9464
# /healthz on the default port; the slim image has no curl, Python's urllib does the probe.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=3)"]
ENTRYPOINT ["anomstream"]
CMD ["run"]
