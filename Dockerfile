# Imagine Bot. The default command is `python bot.py`: the gateway on PostgreSQL, or the
# whole bot on SQLite; `python worker.py` runs a worker. docker-compose.yml runs a gateway, two
# workers and PostgreSQL from this image. Settings come from the environment (--env-file .env).
#
# python:3.11-slim, pinned by the digest docker-library/repo-info records for that tag
# (repos/python/remote/3.11-slim.md at commit 2477d553d2fd: Python 3.11.15 on Debian trixie,
# built 2026-08-05). It was not pulled where this file was written (no Docker engine there);
# to update, move the tag and the digest together.
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A user of its own (numeric, so a runtime can check it is not root without /etc/passwd).
RUN groupadd --system --gid 10001 imagine \
    && useradd --system --uid 10001 --gid imagine --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin imagine

# The dependencies alone, as pinned in pyproject.toml with the postgres extra (what the
# gateway and the workers need), in a layer built again only when pyproject.toml changes.
COPY pyproject.toml scripts/requirements.py /tmp/deps/
RUN python /tmp/deps/requirements.py --pyproject /tmp/deps/pyproject.toml postgres \
        > /tmp/deps/requirements.txt \
    && pip install --no-cache-dir -r /tmp/deps/requirements.txt \
    && rm -rf /tmp/deps

# Then the code, root's and read-only to the bot; compiled now, since it cannot write
# __pycache__ at run time. data/ (the SQLite default, sqlite:///data/imagine.db) is the bot's.
WORKDIR /app
COPY bot.py worker.py healthcheck.py ./
COPY imagine/ imagine/
COPY cogs/ cogs/
COPY discord_jobs/ discord_jobs/
COPY locales/ locales/
RUN python -m compileall -q . \
    && install -d -o imagine -g imagine data

USER 10001:10001

# /metrics, /healthz and /readyz (METRICS_PORT), on every interface of the container.
ENV METRICS_PORT=9100 \
    METRICS_HOST=0.0.0.0
EXPOSE 9100

# python is PID 1 and gets the signal itself: bot.py and worker.py handle SIGTERM from their
# first line (running jobs get SHUTDOWN_GRACE_SECONDS, default 30), and start no child
# processes that an init would have to reap. Docker's own stop timeout is 10 s: give a plain
# `docker run` --stop-timeout 45 (75 for a worker), as compose's stop_grace_period does.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
CMD ["python", "bot.py"]
