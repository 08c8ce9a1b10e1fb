# One image for web, worker and agent; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp2 nodejs && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . && python manage.py collectstatic --noinput || true
ENV MEM0_PRODUCTION=1 PYTHONUNBUFFERED=1
