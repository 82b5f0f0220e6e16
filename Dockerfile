# The worker and the simulator share this image; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY agents ./agents
COPY models ./models
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV AUTOPILOT_WEB_HOST=0.0.0.0 \
    AUTOPILOT_DATA_DIR=/var/lib/autopilot
USER nobody
ENTRYPOINT ["autopilot"]
CMD ["worker", "-l", "info"]
