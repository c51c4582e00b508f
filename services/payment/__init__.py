"""payment: a simulated card processor. Charges are idempotent by `Idempotency-Key`: a retried
charge (say, by an Envoy retry policy after a timeout) returns the first result instead of
charging twice. `DECLINE_RATE` declines that fraction of new charges (seeded by `SEED`); the
`latency_ms` knob plays a slow processor."""
