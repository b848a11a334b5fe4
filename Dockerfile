# The base image: any Python 3.11 image with `python` and `pip` on PATH (deploy/offline-images.sh
# builds one from Debian packages where Docker Hub is out of reach).
ARG PYTHON_IMAGE=python:3.11-slim

# Build: wheels for the app and its dependencies, in a throwaway stage.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Run: only the wheels, the migrations and a non-root user.
FROM ${PYTHON_IMAGE}
# Both SQLite files in /data, the one directory the non-root user may write to (the sandbox
# ledger's default, ./autorenew-sandbox.db, would land in the root-owned working directory).
# Production by default: the image listens on every interface, so it must not start on the
# public development secrets; it names each setting it still needs. For a local try:
# docker run -e AUTORENEW_ENV=development -p 8000:8000 autorenew
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AUTORENEW_ENV=production \
    AUTORENEW_DATABASE_URL=sqlite+aiosqlite:////data/autorenew.db \
    AUTORENEW_SANDBOX_DATABASE_URL=sqlite+aiosqlite:////data/autorenew-sandbox.db
RUN useradd --create-home --uid 10001 autorenew && mkdir /data && chown autorenew /data
WORKDIR /srv/autorenew
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
# The migrations are read from beside the installed package's project root.
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
USER autorenew
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Migrations first (idempotent, serialised between replicas), then the server. X-Forwarded-For
# is believed from AUTORENEW_TRUSTED_PROXIES only (the app reads it, not uvicorn).
CMD ["sh", "-c", "autorenew migrate && exec autorenew serve --host 0.0.0.0 --port 8000"]
