# cover2 worker image: `docker build -t cover2:latest .`
# The same image runs `cover2 simulate` (override the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 cover2 \
    && useradd --system --uid 10001 --gid cover2 --home-dir /var/lib/cover2 \
        --no-create-home --shell /usr/sbin/nologin cover2 \
    && install -d -o cover2 -g cover2 -m 0750 /var/lib/cover2

# Runtime dependencies only: the `dev` extra is not installed.
COPY pyproject.toml README.md /tmp/cover2/
COPY risk /tmp/cover2/risk
COPY streams /tmp/cover2/streams
RUN pip install /tmp/cover2 \
    && rm -rf /tmp/cover2

# Listen on every interface so Prometheus can scrape the worker; keep state on a volume.
ENV COVER2_WEB_HOST=0.0.0.0 \
    COVER2_WEB_PORT=6066 \
    COVER2_STATE_DIR=/var/lib/cover2

USER 10001:10001
WORKDIR /var/lib/cover2
VOLUME ["/var/lib/cover2"]
EXPOSE 6066

# /healthz answers 200 once the worker has joined its group and restored its state; it asks
# for no credentials. With a web config (COVER2_WEB_CONFIG_FILE, whose tls_server_config makes
# the server HTTPS) this local probe does not verify the certificate: it knows no CA. The
# compose stack replaces it with a check that verifies against the stack's CA.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('COVER2_WEB_CONFIG_FILE')); urllib.request.urlopen('%s://localhost:%s/healthz' % ('https' if tls else 'http', os.environ.get('COVER2_WEB_PORT', '6066')), timeout=4, context=ssl._create_unverified_context() if tls else None)"]

ENTRYPOINT ["cover2"]
CMD ["worker"]
