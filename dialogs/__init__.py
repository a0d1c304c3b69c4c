"""The conversation, independent of any channel: questions, parsing, the machine and `step`."""
