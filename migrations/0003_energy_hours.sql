-- Hourly rollup of energy_buckets, for fast history/energy queries over long ranges (docs/schema.md).
-- Keyed by UTC hour: every local day, week and month boundary of a whole-hour zone is a UTC hour,
-- whatever the DST state; readers take the quarter-hours of an hour that a :30/:45 local boundary
-- splits from energy_buckets. Maintained by the triggers below, so it is written in the same
-- transaction as the buckets by every writer. Buckets only grow (never deleted, energy and samples
-- only added, min/max only widened), which the UPDATE trigger relies on.

CREATE TABLE energy_hours (
  cid            TEXT    NOT NULL,
  start_ms       INTEGER NOT NULL,            -- hour start, unix ms, a multiple of 3600000
  energy_mwh     INTEGER NOT NULL DEFAULT 0,  -- sums of the hour's four buckets
  samples        INTEGER NOT NULL DEFAULT 0,
  power_sum_mw   INTEGER NOT NULL DEFAULT 0,
  power_min_mw   INTEGER,                     -- min/max over the buckets; NULL while samples = 0
  power_max_mw   INTEGER,
  voltage_min_mv INTEGER,
  voltage_max_mv INTEGER,
  current_max_ua INTEGER,
  PRIMARY KEY (cid, start_ms)
) WITHOUT ROWID;

-- Backfill from the existing buckets (the double modulo floors negative times too).
INSERT INTO energy_hours (cid, start_ms, energy_mwh, samples, power_sum_mw, power_min_mw, power_max_mw,
                          voltage_min_mv, voltage_max_mv, current_max_ua)
SELECT cid, start_ms - (start_ms % 3600000 + 3600000) % 3600000, sum(energy_mwh), sum(samples),
       sum(power_sum_mw), min(power_min_mw), max(power_max_mw), min(voltage_min_mv), max(voltage_max_mv),
       max(current_max_ua)
FROM energy_buckets
GROUP BY 1, 2;

-- Multi-argument min()/max() are NULL if any argument is, hence the coalesce.
CREATE TRIGGER energy_hours_on_insert AFTER INSERT ON energy_buckets
BEGIN
  INSERT INTO energy_hours (cid, start_ms, energy_mwh, samples, power_sum_mw, power_min_mw, power_max_mw,
                            voltage_min_mv, voltage_max_mv, current_max_ua)
  VALUES (NEW.cid, NEW.start_ms - (NEW.start_ms % 3600000 + 3600000) % 3600000, NEW.energy_mwh, NEW.samples,
          NEW.power_sum_mw, NEW.power_min_mw, NEW.power_max_mw, NEW.voltage_min_mv, NEW.voltage_max_mv,
          NEW.current_max_ua)
  ON CONFLICT (cid, start_ms) DO UPDATE SET
    energy_mwh = energy_mwh + excluded.energy_mwh,
    samples = samples + excluded.samples,
    power_sum_mw = power_sum_mw + excluded.power_sum_mw,
    power_min_mw = coalesce(min(power_min_mw, excluded.power_min_mw), power_min_mw, excluded.power_min_mw),
    power_max_mw = coalesce(max(power_max_mw, excluded.power_max_mw), power_max_mw, excluded.power_max_mw),
    voltage_min_mv = coalesce(min(voltage_min_mv, excluded.voltage_min_mv), voltage_min_mv,
                              excluded.voltage_min_mv),
    voltage_max_mv = coalesce(max(voltage_max_mv, excluded.voltage_max_mv), voltage_max_mv,
                              excluded.voltage_max_mv),
    current_max_ua = coalesce(max(current_max_ua, excluded.current_max_ua), current_max_ua,
                              excluded.current_max_ua);
END;

-- An UPSERT that hits an existing bucket runs the UPDATE triggers: add the difference.
CREATE TRIGGER energy_hours_on_update AFTER UPDATE ON energy_buckets
BEGIN
  UPDATE energy_hours SET
    energy_mwh = energy_mwh + NEW.energy_mwh - OLD.energy_mwh,
    samples = samples + NEW.samples - OLD.samples,
    power_sum_mw = power_sum_mw + NEW.power_sum_mw - OLD.power_sum_mw,
    power_min_mw = coalesce(min(power_min_mw, NEW.power_min_mw), power_min_mw, NEW.power_min_mw),
    power_max_mw = coalesce(max(power_max_mw, NEW.power_max_mw), power_max_mw, NEW.power_max_mw),
    voltage_min_mv = coalesce(min(voltage_min_mv, NEW.voltage_min_mv), voltage_min_mv, NEW.voltage_min_mv),
    voltage_max_mv = coalesce(max(voltage_max_mv, NEW.voltage_max_mv), voltage_max_mv, NEW.voltage_max_mv),
    current_max_ua = coalesce(max(current_max_ua, NEW.current_max_ua), current_max_ua, NEW.current_max_ua)
  WHERE cid = NEW.cid AND start_ms = NEW.start_ms - (NEW.start_ms % 3600000 + 3600000) % 3600000;
END;
