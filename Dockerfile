# The API as a container: migrate (waiting for the database), then serve. No make, no dev tools.
# Build: docker build -t todo-api .   Run: docker run -e DATABASE_URL=... -p 8000:8000 todo-api
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin todo \
    && mkdir /data && chown todo /data

WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY src ./src
RUN pip install -c constraints.txt .
COPY deploy/entrypoint.sh ./deploy/entrypoint.sh

USER todo
# The working directory holds the SQLite file when DATABASE_URL is unset (try-out only).
WORKDIR /data
ENV HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json
EXPOSE 8000

# Ready: the database answers, at the schema this code needs (not just "the process runs").
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/ready\", timeout=4)"]

CMD ["/app/deploy/entrypoint.sh"]
