"""Task files -> examples -> rendered prompts -> token ids with the slot's position."""
