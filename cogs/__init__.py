"""The Discord surface of Imagine Bot, loaded as discord.py extensions."""
