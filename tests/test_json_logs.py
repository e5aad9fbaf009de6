"""``LOG_FORMAT=json`` (issue 19, part 3): one JSON object a line, with the job's ids, and
never a secret.

The formatter is checked on its own first (the job context: test_logcontext.py); then the
whole bot runs at
DEBUG with its own ``setup_logging`` (as test_reliability's debug-log test does) and a worker
runs as ``python worker.py``: every line they write parses, a job's lines carry its job id,
server and member, and no token (the bot's, HF_TOKEN, a member's own, an interaction's) is in
any line, a traceback included.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

import bot as bot_module
from imagine import logcontext, logsafe
from imagine.drawing import Drawing
from imagine.errors import BadInput
from imagine.jsonlog import JsonFormatter
from imagine.settings import Settings
from imagine.store import jobs
from tests.fakes.space import JsonError
from tests.harness import Harness, running_bot
from tests.processes import start
from tests.test_member_tokens import connected

pytestmark = pytest.mark.timeout(120)

BOT_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GabcDE.secret-discord-token-value-xyz"
HF = "hf_SECRETsecretSECRETsecret1234"
ALICE_HF = "hf_AliceOwnToken0123456789abcdefXYZ"
KEY = Fernet.generate_key().decode()
FIELDS = {"time", "level", "logger", "message"}
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@pytest.fixture(autouse=True)
def fresh_redactor(monkeypatch):
    """No secret learned by another test: what is redacted here, this test's run redacted."""
    monkeypatch.setattr(logsafe, "LEARNED", logsafe.LearnedSecrets())


def record(message: str = "hello %s", *args: Any, **attrs: Any) -> logging.LogRecord:
    made = logging.LogRecord("imagine.test", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(attrs)
    return made


def through(handler_filters: list[logging.Filter], formatter: logging.Formatter, rec) -> str:
    """What a handler with these filters and this formatter writes for ``rec``."""
    for f in handler_filters:
        assert f.filter(rec)
    return formatter.format(rec)


# -- the setting ------------------------------------------------------------------------------


def test_log_format_is_text_unless_json_is_asked_and_a_typo_fails_at_start():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(BadInput, match="LOG_FORMAT must be one of text, json, not 'jsonl'"):
        Settings.from_env({"LOG_FORMAT": "jsonl"})


# -- the formatter ----------------------------------------------------------------------------


def test_a_line_is_one_object_with_the_time_in_utc_and_no_ids_outside_a_job():
    rec = record("two\nlines, %s", "ünïcode")
    rec.created = datetime(2026, 8, 5, 1, 2, 3, 456000, tzinfo=UTC).timestamp()
    logcontext.JobFields().filter(rec)
    line = JsonFormatter().format(rec)
    assert "\n" not in line and line.isascii()
    entry = json.loads(line)
    assert entry == {
        "time": "2026-08-05T01:02:03.456+00:00",
        "level": "INFO",
        "logger": "imagine.test",
        "message": "two\nlines, ünïcode",
    }
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)


def test_a_jobs_ids_come_from_its_context_and_discord_ids_are_strings():
    guild, user = 1_234_567_890_123_456_789, 987_654_321_098_765_432  # past 2**53
    with logcontext.about_job(7, guild_id=guild, user_id=user):
        inside = record()
        logcontext.JobFields().filter(inside)
        explicit = record(job_id=8)  # given with extra=: kept
        logcontext.JobFields().filter(explicit)
    outside = record()
    logcontext.JobFields().filter(outside)
    entry = json.loads(JsonFormatter().format(inside))
    assert (entry["job_id"], entry["guild_id"], entry["user_id"]) == (7, str(guild), str(user))
    assert json.loads(JsonFormatter().format(explicit))["job_id"] == 8
    assert not {"job_id", "guild_id", "user_id"} & set(json.loads(JsonFormatter().format(outside)))


def test_a_secret_survives_in_no_field_message_traceback_or_stack():
    secret = "sk-a-very-secret-api-key-123"
    try:
        raise RuntimeError(f"the backend said {secret}")
    except RuntimeError as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
    stack = f'  File "x.py", line 1\n    key = "{secret}"'
    url = "PATCH https://discord.example.invalid/api/v10/webhooks/123/" + "a" * 70 + "/messages/1"

    def records() -> list[logging.LogRecord]:  # fresh ones: the filter rewrites a record
        return [
            record("job %s: %s", 3, secret, exc_info=exc_info),
            record("where %s", "am I", stack_info=stack),
            record(url),
        ]

    # With the handler's redacting filter (as setup_logging installs it) ...
    filtered = [
        json.loads(through([logsafe.RedactingFilter([secret])], JsonFormatter(), r))
        for r in records()
    ]
    # ... and without it: the formatter redacts every field itself.
    alone = JsonFormatter(logsafe.Redactor([secret]))
    bare = [json.loads(alone.format(r)) for r in records()]
    for entries in (filtered, bare):
        assert secret not in json.dumps(entries) and "a" * 70 not in json.dumps(entries)
        assert entries[0]["message"] == "job 3: [redacted]"
        assert "RuntimeError: the backend said [redacted]" in entries[0]["traceback"]
        assert 'key = "[redacted]"' in entries[1]["stack"]
        assert "/webhooks/123/[redacted]/messages/1" in entries[2]["message"]
    # The check could fail: unredacted, the secret is there.
    assert secret in JsonFormatter().format(records()[0])


# -- the bot and a worker, for real ----------------------------------------------------------


def entries_of(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (a line that is not fails the test, named)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line[:300]!r}")
        assert isinstance(entry, dict) and set(entry) >= FIELDS, line[:300]
        assert entry["level"] in LEVELS, line[:300]
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0), line[:300]
        entries.append(entry)
    assert entries, "nothing was logged"
    return entries


def assert_no_secret(text: str, entries: list[dict[str, Any]], secrets: list[str]) -> None:
    """Neither in the lines as written nor in what a reader decodes from them."""
    decoded = "\n".join(str(value) for entry in entries for value in entry.values())
    for secret in secrets:
        assert secret not in text and secret not in decoded, secret[:6]


async def job_rows(h: Harness) -> dict[int, tuple[int, int | None]]:
    """Every job: its member and its server."""
    await h.bot.store.flush()
    async with h.bot.store.engine.connect() as conn:
        rows = await conn.execute(sa.select(jobs.c.id, jobs.c.user_id, jobs.c.guild_id))
        return {row.id: (row.user_id, row.guild_id) for row in rows}


def assert_jobs_carry_their_ids(entries: list[dict[str, Any]], rows: dict) -> None:
    """Each job has lines of its own, discord.py's requests for it among them, and every line
    with its id names its member and server; the gateway's reading never carries a job id."""
    for job_id, (user_id, guild_id) in rows.items():
        mine = [e for e in entries if e.get("job_id") == job_id]
        assert mine, f"no line about job {job_id}"
        assert {(e.get("user_id"), e.get("guild_id")) for e in mine} == {
            (str(user_id), str(guild_id))
        }, job_id
        requests = [e for e in mine if e["logger"].startswith("discord.")]
        assert requests, f"job {job_id}: none of discord.py's requests for it carries its id"
    assert not [e for e in entries if e["logger"] == "discord.gateway" and "job_id" in e]


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    """The bot's own ``setup_logging`` (``LOG_FORMAT=json``) writes here; undone after."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    yield stream
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__


def test_warnings_and_an_uncaught_exception_are_json_lines_too(json_logging):
    """Nothing reaches standard error as raw text: a warning, or the exception that ends
    the program (its traceback redacted like any other)."""
    settings = Settings.from_env({"LOG_FORMAT": "json", "HF_TOKEN": HF})
    bot_module.setup_logging(settings, handler=logging.StreamHandler(json_logging))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated, like audioop", DeprecationWarning, stacklevel=1)
    try:
        raise ConnectionError(f"could not log in with {HF}")
    except ConnectionError:
        sys.excepthook(*sys.exc_info())
    warned, crashed = entries_of(json_logging.getvalue())
    assert warned["logger"] == "py.warnings" and "deprecated, like audioop" in warned["message"]
    assert (crashed["level"], crashed["logger"]) == ("CRITICAL", "imagine.bot")
    assert "ConnectionError: could not log in with [redacted]" in crashed["traceback"]
    assert HF not in json_logging.getvalue()


async def test_a_bot_run_at_debug_writes_json_lines_with_job_ids_and_no_secret(
    tmp_path, monkeypatch, json_logging
):
    env = {"HF_TOKEN": HF, "SECRETS_KEY": KEY, "LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"}
    async with running_bot(tmp_path, start=False, token=BOT_TOKEN, **env) as h:
        bot_module.setup_logging(h.settings, handler=logging.StreamHandler(json_logging))
        await h.start_bot()
        h.bot.engine.retry_backoff = 0.05
        # Alice connects her own token (a modal: its value is in the gateway event's log).
        h.space.add_hub_user("alicehf", ALICE_HF, pro=True)
        await connected(h, h.alice, ALICE_HF, "alicehf")
        ok = await h.final(await h.slash({"prompt": "a fox", "model": "flux-dev"}))
        assert ok.attachments
        h.space.set_fault("flux-dev", JsonError(400, f"echoing your token {HF}"), times=1)
        echoed = await h.final(await h.slash({"prompt": "b", "model": "flux-dev"}, user=h.bob))
        assert "[redacted]" in echoed.embeds[0]["description"]

        async def crash(self: Drawing) -> None:
            raise RuntimeError(f"unexpected, holding {HF}")

        monkeypatch.setattr(Drawing, "run", crash)
        crashed = await h.final(await h.slash({"prompt": "c", "model": "flux-dev"}, user=h.bob))
        assert crashed.embeds[0]["title"] == "Couldn't make this image"
        rows = await job_rows(h)
        tokens = [i.token for i in h.discord.interactions.values()]
    text = json_logging.getvalue()
    entries = entries_of(text)
    assert any(e["level"] == "DEBUG" and "/webhooks/" in e["message"] for e in entries)
    assert len(rows) == 3
    assert_jobs_carry_their_ids(entries, rows)
    (failure,) = [e for e in entries if e["message"].endswith("failed unexpectedly")]
    assert failure["message"] == f"job {max(rows)} failed unexpectedly"
    assert failure["job_id"] == max(rows)
    assert "RuntimeError: unexpected, holding [redacted]" in failure["traceback"]
    assert "'value': '[redacted]'" in text  # the modal's submission was logged, without it
    assert_no_secret(text, entries, [BOT_TOKEN, HF, ALICE_HF, KEY, *tokens])


async def test_a_worker_writes_json_lines_with_job_ids_and_no_secret(tmp_path, postgres_url):
    """Its jobs' lines carry their ids, the worker's own too: a job handed back at a stop is
    logged by the worker, outside the job runner."""
    env = {"DATABASE_URL": postgres_url, "HF_TOKEN": HF}
    async with running_bot(tmp_path, token=BOT_TOKEN, **env) as h:
        log = tmp_path / "worker.log"
        worker_env = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "SHUTDOWN_GRACE_SECONDS": "1"}
        worker = start(["worker.py"], {**h.env, **worker_env}, log)
        try:
            ok = await h.final(await h.slash({"prompt": "a fox", "model": "flux-dev"}), 60)
            assert ok.attachments
            h.space.set_fault("flux-dev", JsonError(400, f"echoing your token {HF}"), times=1)
            echoed = await h.final(await h.slash({"prompt": "b", "model": "flux-dev"}, user=h.bob))
            assert "[redacted]" in echoed.embeds[0]["description"]
            h.space.generation_delay = 60
            slow = await h.slash({"prompt": "a slow painting"}, user=h.bob)
            await h.discord.wait_until(
                lambda: slow.original and "Starting" in (slow.original.content or ""), 30
            )
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(worker.wait, 30) == 0
            rows = await job_rows(h)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(5)
        tokens = [i.token for i in h.discord.interactions.values()]
    text = await asyncio.to_thread(log.read_text)
    entries = entries_of(text)
    assert any(e["logger"] == "imagine.worker" and "ready" in e["message"] for e in entries)
    assert len(rows) == 3
    assert_jobs_carry_their_ids(entries, rows)
    handed_back = f"job {max(rows)} handed back to the queue"
    (line,) = [e for e in entries if e["message"] == handed_back]
    assert (line["logger"], line["job_id"]) == ("imagine.worker", max(rows))
    assert (line["user_id"], line["guild_id"]) == (h.bob["id"], str(h.guild.id))
    assert_no_secret(text, entries, [BOT_TOKEN, HF, *tokens])
