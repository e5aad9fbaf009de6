"""The log redactor (``imagine.logsafe``) on a record's stack (``stack_info=True``); on its
message, traceback and learned secrets: test_reliability.py, test_member_tokens.py and
test_json_logs.py."""

from __future__ import annotations

import logging

from imagine import logsafe


def test_the_text_format_redacts_a_stack_too():
    """``stack_info=True`` prints the stack after the message: the filter redacts it, as it
    does a traceback."""
    secret = "sk-a-very-secret-api-key-123"
    record = logging.LogRecord("imagine.test", logging.INFO, __file__, 1, "where", None, None)
    record.stack_info = f'Stack (most recent call last):\n    key = "{secret}"'
    assert logsafe.RedactingFilter([secret]).filter(record)
    text = logging.Formatter().format(record)
    assert secret not in text and 'key = "[redacted]"' in text
