"""Built-in synthesizers: template (offline), prompts (instruction variants), gemini."""
