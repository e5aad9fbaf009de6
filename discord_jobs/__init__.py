"""The bot's machinery on the Discord side: a request checked and launched (``launch``,
``starting``, ``shared_launch``), shown and ended in one reply (``replies``, ``render``),
recovered after a restart (``recovery``), read from an attachment (``attachments``), and
spoken in the member's language (``language``). The cogs parse interactions and call it;
``bot.py`` and ``worker.py`` build it. It imports ``imagine``, never the other way round."""
