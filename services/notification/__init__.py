"""notification: email and SMS that never leave the machine. Each message is written to an
outbox table (the transactional-outbox pattern a real relay would drain) and to the service log,
and is idempotent by an optional `Idempotency-Key`."""
