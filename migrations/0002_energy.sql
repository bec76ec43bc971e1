-- Energy accounting (src/energy). Buckets are kept forever; raw readings are pruned after
-- retention.raw_days. Both tables are written in the same transaction as the readings.

-- Per-socket 15-minute buckets, maintained incrementally (UPSERT) as readings are committed.
CREATE TABLE energy_buckets (
  cid            TEXT    NOT NULL,
  start_ms       INTEGER NOT NULL,            -- bucket start, unix ms, a multiple of 900000 (UTC quarter-hour)
  energy_mwh     INTEGER NOT NULL DEFAULT 0,  -- accounted energy of the readings in this bucket (see docs/schema.md)
  samples        INTEGER NOT NULL DEFAULT 0,  -- readings with a valid meter value (kMeterOk)
  power_sum_mw   INTEGER NOT NULL DEFAULT 0,  -- mean power = power_sum_mw / samples
  power_min_mw   INTEGER,                     -- NULL while samples = 0
  power_max_mw   INTEGER,
  voltage_min_mv INTEGER,
  voltage_max_mv INTEGER,
  current_max_ua INTEGER,
  PRIMARY KEY (cid, start_ms)
) WITHOUT ROWID;

-- Accounting baseline per socket: the last accepted reading and the all-time total.
CREATE TABLE energy_state (
  cid          TEXT    NOT NULL PRIMARY KEY,
  boot         INTEGER NOT NULL,  -- (boot, seq) of the last reading accounted; older records are ignored
  seq          INTEGER NOT NULL,
  ts_ms        INTEGER NOT NULL,  -- its time (for the max-power plausibility check)
  energy_mwh   INTEGER NOT NULL,  -- its counter value and epoch: the baseline of the next increment
  energy_epoch INTEGER NOT NULL,
  total_mwh    INTEGER NOT NULL   -- all-time accounted energy = sum of energy_buckets.energy_mwh
) WITHOUT ROWID;
