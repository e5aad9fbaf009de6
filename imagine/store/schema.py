"""The bot's tables, as the newest schema has them (``migrations`` brings older databases here).

Written with SQLAlchemy Core so the same tables live on SQLite (the default) and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

guild_settings = sa.Table(
    "guild_settings",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("default_model", sa.String(100)),
    sa.Column("allowed_models", sa.Text),  # JSON list; NULL = all
    sa.Column("cooldown_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("channels", sa.Text),  # JSON list of channel ids; NULL/empty = everywhere
    sa.Column("max_size", sa.Integer),
    sa.Column("fallback_model", sa.String(100)),
    sa.Column("blocked_words", sa.Text),  # JSON list
    sa.Column("updated_at", sa.Float),
    sa.Column("default_count", sa.Integer),  # images per /imagine; NULL = 1
    sa.Column("max_count", sa.Integer),  # the most a member may ask; NULL = 4
    sa.Column("translate_model", sa.String(100)),  # version 5; NULL = prompts never translated
    sa.Column("daily_limit", sa.Integer),  # version 7: images per member per UTC day; NULL/0 = none
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("guild_id", sa.BigInteger),
    sa.Column("channel_id", sa.BigInteger),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("model", sa.String(100), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger),  # as asked; NULL = random
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("application_id", sa.BigInteger),
    sa.Column("interaction_token", sa.Text),  # valid 15 min; lets a restart edit the reply
    sa.Column("token_expires_at", sa.Float),
    sa.Column("message_id", sa.BigInteger),
    sa.Column("result_seed", sa.BigInteger),
    sa.Column("result_model", sa.String(100)),
    sa.Column("result_backend", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    # Version 3: the creative loop.
    sa.Column("kind", sa.String(20), nullable=False, server_default="imagine"),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("negative", sa.Text),
    sa.Column("parent_id", sa.Integer),  # the job whose image this one starts from (U, V)
    sa.Column("image_index", sa.Integer),  # which of the parent's images (0-based)
    sa.Column("input_url", sa.Text),  # an input image, by its Discord attachment URL
    sa.Column("input_sha256", sa.String(64)),  # and the hash of its bytes (never the bytes)
    sa.Column("result", sa.Text),  # JSON: each image's seed and backend; /describe's prompts
    # Version 5: members' own settings and languages.
    sa.Column("language", sa.String(10)),  # what the requester reads; NULL = English
    sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),  # ephemeral
    sa.Column("translated_prompt", sa.Text),  # the English drawn, when the prompt was translated
    # Version 6: where the input image was posted, to read a fresh signed URL from Discord.
    sa.Column("input_channel_id", sa.BigInteger),
    sa.Column("input_message_id", sa.BigInteger),
    # Version 7: free GPU that lasts.
    sa.Column("nsfw", sa.Boolean, nullable=False, server_default=sa.false()),  # age-restricted
    sa.Column("kudos", sa.Float),  # what the AI Horde charged for it
    sa.Column("charged", sa.Integer, nullable=False, server_default="0"),  # images on the budget
    # Version 9: Upscale, Zoom Out, Pan and Vary (Region): what the operation was asked.
    sa.Column("factor", sa.Float),  # Upscale's and Zoom Out's factor
    sa.Column("direction", sa.String(10)),  # Pan's: left, right, up, down
    sa.Column("cells", sa.String(200)),  # Vary (Region)'s cells, comma-separated names
    sa.Index("ix_jobs_state", "state"),
    sa.Index("ix_jobs_user", "user_id", "id"),  # version 5: a member's latest job
    sa.Index("ix_jobs_guild_created", "guild_id", "created_at"),  # version 8: a server's usage
)
job_ended_at = sa.func.coalesce(jobs.c.finished_at, jobs.c.created_at)
"""When a job ended (or began, if it never recorded an end): what the retention purge compares,
spelled as its index is so that the database uses the index."""
sa.Index("ix_jobs_state_ended_at", jobs.c.state, job_ended_at)

# Version 4: the shared queue (``imagine.shared``), used with PostgreSQL and workers.
job_queue = sa.Table(
    "job_queue",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # waiting, running
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("owner", sa.String(200)),  # the worker running it
    sa.Column("lease_until", sa.Float),  # renewed by the owner's heartbeats
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requester", sa.String(200)),  # the name shown under the result
    sa.Column("fallback", sa.String(100)),  # the fallback model chosen at the request
    # Version 6: a Cancel pressed while the job runs, kept until its worker sees it.
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cancel_by", sa.String(200)),  # who pressed it, as shown to people
    sa.Index("ix_job_queue_state", "state"),
)
queue_users = sa.Table(
    "queue_users",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("turn", sa.BigInteger, nullable=False),  # lower goes first; back = max + 1
)

# Version 5: each member's own defaults (``/settings``) and last known Discord locale.
user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(100)),  # NULL: the server's default
    sa.Column("aspect", sa.String(10)),
    sa.Column("count", sa.Integer),
    sa.Column("private", sa.Boolean),  # NULL: public results
    sa.Column("language", sa.String(10)),  # NULL: follow Discord
    sa.Column("locale", sa.String(20)),  # the member's Discord locale when last seen
    sa.Column("updated_at", sa.Float),
)

# Version 6: the workers alive, each renewing ``seen_at`` (the database's clock) as it runs.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
)

# Version 7: members' own secrets (a Hugging Face token), encrypted (Fernet, SECRETS_KEY).
user_secrets = sa.Table(
    "user_secrets",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hf_token", sa.Text, nullable=False),  # ciphertext, never the token
    sa.Column("hf_account", sa.String(200)),  # the name whoami-v2 gave: what /settings shows
    sa.Column("updated_at", sa.Float),
)

# Version 7: images each member made in each server on each UTC day (daily budgets).
daily_usage = sa.Table(
    "daily_usage",
    metadata,
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("images", sa.Integer, nullable=False),
)

# Version 7: a ZeroGPU quota refusal rests one (backend, account) until the time it named.
quota_rests = sa.Table(
    "quota_rests",
    metadata,
    sa.Column("backend", sa.String(200), primary_key=True),
    sa.Column("account", sa.String(64), primary_key=True),  # "bot", or a member's token hash
    sa.Column("until", sa.Float, nullable=False),
    sa.Column("reason", sa.Text),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
