-- Durable uplink outbox (docs/schema.md "Uplink outbox"): properties/report messages the broker has
-- not acknowledged yet. Events (relay, faults, switch_enabled) are one row each, sent in `ord` order;
-- state DPs keep one row per (cid, dp), the latest value (the daemon deletes the older row in the
-- same transaction as it inserts the newer). Rows are deleted once the broker acknowledged (PUBACK).

CREATE TABLE outbox (
  ord    INTEGER PRIMARY KEY,        -- creation order, gateway-wide; also the row's identity
  cid    TEXT    NOT NULL,
  dp     INTEGER NOT NULL,           -- Tuya DP id
  kind   INTEGER NOT NULL CHECK (kind IN (0, 1)),  -- 0 = event (kept, in order), 1 = state (latest)
  t_ms   INTEGER NOT NULL,           -- when the value was current (unix ms; the report's t)
  value  TEXT    NOT NULL            -- the DP value as JSON text, as reported
);

CREATE INDEX outbox_cid ON outbox (cid, kind, ord);
