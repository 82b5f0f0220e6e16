# The worker and the simulator share this image; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY agents ./agents
COPY models ./models
COPY schemas ./schemas
# The models' kernels compiled (models.native): a compiler for the build only.
ENV AUTOPILOT_NATIVE_CACHE=/opt/autopilot/native
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir '.[native]' \
    && autopilot native build \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
ENV AUTOPILOT_WEB_HOST=0.0.0.0 \
    AUTOPILOT_DATA_DIR=/var/lib/autopilot
USER nobody
ENTRYPOINT ["autopilot"]
CMD ["worker", "-l", "info"]
