# One image for web, worker and agent; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm
# golang: the Go runtime's toolchain (the agent builds its shared standard-library cache at start);
# busybox-static: the shell userland of commands; nodejs: the Node.js runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp2 golang busybox-static nodejs && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . && python manage.py collectstatic --noinput || true
ENV MEM0_PRODUCTION=1 PYTHONUNBUFFERED=1
