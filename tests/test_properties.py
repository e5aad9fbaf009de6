"""Property-based tests: whatever a backend or a chat throws at the parsers, they answer with
a result or one of our own errors, never an unhandled exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from imagine.errors import ImagineError
from imagine.gradio import Completed, GradioStream, apply_diff
from imagine.messages import format_image_prompt
from imagine.sse import SSEDecoder, SSEError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_kinds = st.sampled_from(
    ["estimation", "process_starts", "progress", "log", "heartbeat", "process_generating",
     "process_completed", "close_stream", "unexpected_error", "send_hash", "whatever"]
)  # fmt: skip
gradio_messages = st.one_of(
    json_values,
    st.builds(
        lambda kind, extra: {"msg": kind, **extra},
        message_kinds,
        st.dictionaries(
            st.sampled_from(["rank", "queue_size", "rank_eta", "progress_data", "log", "output",
                             "success", "event_id", "message", "title"]),
            json_values,
            max_size=5,
        ),
    ),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(gradio_messages, max_size=12))
def test_random_gradio_event_sequences(messages):
    stream = GradioStream(base_url="http://127.0.0.1:1", alt="x", backend="Space")
    for message in messages:
        try:
            item = stream.handle(message)
        except ImagineError:
            return  # a failed job, said in our own words
        if isinstance(item, Completed):
            assert isinstance(item.data, list)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"data: ", b"\n\n", b"\r", b": x\n"])))
def test_random_bytes_through_decoder_and_stream(chunks):
    decoder = SSEDecoder(max_line=4096)
    stream = GradioStream(base_url="http://127.0.0.1:1", alt="x", backend="Space")
    for chunk in chunks:
        try:
            events = decoder.feed(chunk)
        except SSEError:
            return
        for event in events:
            try:
                message = json.loads(event.data)
            except ValueError:
                continue
            try:
                stream.handle(message)
            except ImagineError:
                return


@settings(max_examples=300, deadline=None)
@given(json_values, st.lists(json_values, max_size=5))
def test_apply_diff_never_raises(value, diff):
    apply_diff(value, diff)


roles = st.sampled_from(["user", "assistant", "system", "tool", None, 3])
contents = st.one_of(
    st.text(),
    st.none(),
    st.integers(),
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url"]), "text": st.text()}
            ),
            st.dictionaries(st.text(max_size=5), json_values, max_size=3),
            st.text(),
            st.integers(),
        ),
        max_size=4,
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.builds(lambda r, c: {"role": r, "content": c}, roles, contents), json_values),
        max_size=10,
    )
)
def test_format_image_prompt_on_random_message_lists(messages):
    prompt = format_image_prompt(messages)
    assert isinstance(prompt, str)
    assert prompt == prompt.strip() or prompt == ""
