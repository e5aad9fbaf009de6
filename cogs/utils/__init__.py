"""Discord-side helpers shared by the cogs (RoboDanny's ``cogs/utils`` layout)."""
