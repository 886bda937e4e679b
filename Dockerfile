# Stockpile API image. The same image runs the API (the default command), the one-shot
# `inventory db upgrade`, and later the alert worker; docker-compose.yml wires them up.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INVENTORY_INSTANCE_DIR=/var/lib/stockpile \
    INVENTORY_SIGNING_KEY=/var/lib/stockpile/audit-signing-key.pem \
    INVENTORY_LOG_LEVEL=INFO \
    GUNICORN_CMD_ARGS="--logger-class inventory.logs.GunicornLogger"

RUN groupadd --system --gid 10001 stockpile \
    && useradd --system --uid 10001 --gid stockpile --create-home --shell /usr/sbin/nologin stockpile \
    && mkdir -p /var/lib/stockpile \
    && chown stockpile:stockpile /var/lib/stockpile

WORKDIR /app
# constraints.txt pins every package (and the build backend) to the versions tested, so two
# builds of one commit install the same thing; regenerate it with `make constraints`.
COPY pyproject.toml README.md constraints.txt ./
COPY inventory ./inventory
COPY migrations ./migrations
COPY seeds ./seeds
# Editable on purpose: the migrations are not part of the package, and `inventory db upgrade`
# finds them beside the source (inventory/db/migrate.py), i.e. in /app/migrations.
# PIP_CONSTRAINT, not only --constraint: it also reaches pip's isolated build environment.
RUN PIP_CONSTRAINT=/app/constraints.txt pip install --constraint constraints.txt --editable .

# /var/lib/stockpile (the signing key) is owned by the user, so a fresh named volume mounted
# there starts out writable.
USER stockpile:stockpile
EXPOSE 8000

# python, not curl: the slim image has no curl. Exits non-zero on 503 (database unreachable).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["inventory", "serve", "--host", "0.0.0.0"]
