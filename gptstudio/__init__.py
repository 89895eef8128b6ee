"""GPT Studio: turn a creator's documents into a paid, fine-tuned expert assistant."""
