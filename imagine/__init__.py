"""Imagine: the image engine behind Imagine Bot.

It turns a prompt (or a conversation) into an image through free Hugging Face Spaces, the way
gpt4free's ``G4F`` provider does, and streams honest progress while it works. It knows nothing
of Discord, so it can be used from Python and from the command line (``python -m imagine``).
"""

__version__ = "0.1.0"
