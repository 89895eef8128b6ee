"""Everything that needs torch for training; reached from the web process only through the queue."""
