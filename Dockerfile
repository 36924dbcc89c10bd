# anomstream service image. Build the wheel first, then the image:
#   ./dev wheel && docker build -t anomstream .        (or: ./dev wheel && docker compose up --build)
# Runs `anomstream run` by default; any sub-command works: `docker run anomstream simulate ...`.
#
# The image installs the wheel in dist/wheel/, the same file `./dev test` builds and runs the
# whole suite against (tests/test_packaging.py checks that the build context holds exactly the
# tested wheel). No source tree, no build tooling and no embedded broker (the `demo` extra) in
# the image: production talks to the user's Kafka.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY dist/wheel/ /wheels/
RUN pip install /wheels/anomstream-*.whl \
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
