"""The SSE decoder: the format's corner cases, and random input never crashing it."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from imagine.sse import SSEDecoder, SSEError


def decode_all(chunks):
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def test_basic_events():
    events = decode_all([b'data: {"msg": "heartbeat"}\n\ndata: x\n\n'])
    assert [e.data for e in events] == ['{"msg": "heartbeat"}', "x"]


def test_line_endings_split_across_chunks():
    stream = b"data: one\r\n\r\ndata: two\r\rdata: three\n\n"
    for size in range(1, len(stream) + 1):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert [e.data for e in decode_all(chunks)] == ["one", "two", "three"], size


def test_multiline_data_comments_fields_and_bom():
    stream = b"\xef\xbb\xbf: comment\nevent: update\nid: 7\ndata: a\ndata:b\nretry: 5\n\n"
    (event,) = decode_all([stream])
    assert (event.data, event.event, event.id) == ("a\nb", "update", "7")


def test_event_without_blank_line_is_not_emitted():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: half") == []
    assert decoder.flush() == []


def test_over_long_line_is_an_error():
    decoder = SSEDecoder(max_line=16)
    try:
        decoder.feed(b"data: " + b"x" * 64)
    except SSEError:
        return
    raise AssertionError("an over-long line must raise SSEError")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_crash(chunks):
    decoder = SSEDecoder(max_line=1 << 20)
    for chunk in chunks:
        for event in decoder.feed(chunk):
            assert isinstance(event.data, str)


gradio_messages = st.fixed_dictionaries(
    {"msg": st.sampled_from(["estimation", "progress", "log", "heartbeat", "process_starts"])},
    optional={"rank": st.integers(0, 50), "log": st.text(), "event_id": st.text(max_size=8)},
)


@settings(max_examples=200, deadline=None)
@given(st.lists(gradio_messages, max_size=10), st.integers(1, 40))
def test_any_chunking_gives_the_same_events(messages, size):
    stream = b"".join(b"data: " + json.dumps(m).encode() + b"\n\n" for m in messages)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)] or [b""]
    assert [json.loads(e.data) for e in decode_all(chunks)] == messages
