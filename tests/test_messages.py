from imagine.messages import Message, format_image_prompt, message_text


def test_prompt_wins_over_messages():
    messages = [Message(role="user", content="a cat")]
    assert format_image_prompt(messages, "a dog") == "a dog"


def test_consecutive_user_messages_are_joined_and_stripped():
    messages = [
        Message(role="user", content="  a red fox "),
        Message(role="user", content="\nin the snow\t"),
    ]
    assert format_image_prompt(messages) == "a red fox\nin the snow"


def test_assistant_message_breaks_the_run():
    messages = [
        Message(role="user", content="a cat"),
        Message(role="assistant", content="here is your cat"),
        Message(role="user", content="now a dog"),
        Message(role="user", content="on a skateboard"),
    ]
    assert format_image_prompt(messages) == "now a dog\non a skateboard"


def test_last_message_from_assistant_leaves_nothing_to_draw():
    messages = [Message(role="user", content="a cat"), Message(role="assistant", content="done")]
    assert format_image_prompt(messages) == ""


def test_list_of_parts_counts_only_text():
    content = [
        {"type": "text", "text": "a lighthouse"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
        {"type": "text", "text": "at dusk"},
    ]
    assert format_image_prompt([{"role": "user", "content": content}]) == "a lighthouse\nat dusk"
    assert message_text(content) == "a lighthouse\nat dusk"


def test_empty_user_messages_are_skipped_not_breaking():
    messages = [
        Message(role="user", content="a castle"),
        Message(role="user", content="   "),
        Message(role="user", content="on a hill"),
    ]
    assert format_image_prompt(messages) == "a castle\non a hill"


def test_no_messages():
    assert format_image_prompt([]) == ""
    assert format_image_prompt(None) == ""


def test_conversation_keeps_only_the_user_and_the_bots_answers_to_them():
    from imagine.messages import ChatEntry, conversation

    user, other, bot = 1, 2, 99
    entries = [
        ChatEntry(user, "an old idea"),
        ChatEntry(bot, "[image]", for_user=user),
        ChatEntry(user, "a castle"),
        ChatEntry(other, "nice!"),
        ChatEntry(bot, "[image for someone else]", for_user=other),
        ChatEntry(bot, "", for_user=user, pending=True),
        ChatEntry(user, "on a hill"),
    ]
    turns = conversation(entries, user_id=user, bot_id=bot)
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "user"]
    assert format_image_prompt(turns) == "a castle\non a hill"
