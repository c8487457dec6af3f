"""Training: the backend-agnostic loop and the reader of encoded shards. No Spark here."""
