-- A write path for flash (docs/schema.md "Samples"): raw readings are no longer stored one row
-- each. The daemon aggregates them in memory into samples of history.raw_resolution_s and writes
-- those to a table keyed time first, with an integer socket id, so a commit appends to the end of
-- one B-tree instead of touching a page per socket. The 15-minute buckets and their hourly rollup
-- are filled from the samples once an hour (rolled_up_ms below), not at every commit.

-- Integer ids of the sockets, for the rows written at every commit.
CREATE TABLE sockets (
  id  INTEGER PRIMARY KEY,
  cid TEXT    NOT NULL UNIQUE
);

INSERT INTO sockets (cid)
SELECT cid FROM readings UNION SELECT cid FROM energy_state UNION SELECT cid FROM energy_buckets ORDER BY 1;

-- Raw history: one row per socket and raw interval (start_ms, a multiple of the resolution).
-- The columns are those of energy_buckets, over the interval; energy_mwh is the energy accounted
-- to the readings of the interval.
CREATE TABLE samples (
  start_ms       INTEGER NOT NULL,
  socket         INTEGER NOT NULL,            -- sockets.id
  energy_mwh     INTEGER NOT NULL DEFAULT 0,
  samples        INTEGER NOT NULL DEFAULT 0,  -- readings with a valid meter value
  power_sum_mw   INTEGER NOT NULL DEFAULT 0,  -- mean power = power_sum_mw / samples
  power_min_mw   INTEGER,                     -- NULL while samples = 0
  power_max_mw   INTEGER,
  voltage_min_mv INTEGER,
  voltage_max_mv INTEGER,
  current_max_ua INTEGER,
  PRIMARY KEY (start_ms, socket)
) WITHOUT ROWID;

-- Samples with start_ms >= rolled_up_ms are not in energy_buckets / energy_hours yet; readers add
-- them. A sample written later for an earlier interval goes into the rollup tables directly.
CREATE TABLE history_marks (
  name  TEXT    NOT NULL PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

-- A socket with readings but no energy state (a database from before the energy tables) starts
-- from its newest reading, as the accountant did from the readings table.
INSERT INTO energy_state (cid, boot, seq, ts_ms, energy_mwh, energy_epoch, total_mwh)
SELECT cid, boot, seq, max(ts_ms), energy_mwh, energy_epoch, 0
FROM readings
WHERE flags & 8 != 0 AND cid NOT IN (SELECT cid FROM energy_state)
GROUP BY cid;

-- The stored readings become one-minute samples. Their energy is in the buckets already; a
-- sample's energy_mwh is the counter's increase within the socket's boot and epoch (an estimate:
-- what the accountant rejected is not subtracted).
INSERT INTO samples (start_ms, socket, energy_mwh, samples, power_sum_mw, power_min_mw, power_max_mw,
                     voltage_min_mv, voltage_max_mv, current_max_ua)
SELECT m, k.id, sum(max(d, 0)), count(*), sum(power_mw), min(power_mw), max(power_mw), min(voltage_mv),
       max(voltage_mv), max(current_ua)
FROM (SELECT cid, ts_ms - (ts_ms % 60000 + 60000) % 60000 AS m, power_mw, voltage_mv, current_ua,
             coalesce(energy_mwh - lag(energy_mwh) OVER (PARTITION BY cid, boot, energy_epoch
                                                          ORDER BY seq), 0) AS d
      FROM readings WHERE flags & 8 != 0) r
JOIN sockets k ON k.cid = r.cid
GROUP BY m, k.id;

-- Everything before the hour after the newest migrated sample or bucket is in the buckets already.
INSERT INTO history_marks (name, value)
SELECT 'rolled_up_ms', coalesce(m - (m % 3600000 + 3600000) % 3600000 + 3600000, 0)
FROM (SELECT max(coalesce(s, b), coalesce(b, s)) AS m
      FROM (SELECT (SELECT max(start_ms) FROM samples) AS s, (SELECT max(start_ms) FROM energy_buckets) AS b));

DROP TABLE readings;

-- The rollup is written by the daemon (hourly, and directly for late samples), no longer by
-- triggers at every bucket update.
DROP TRIGGER energy_hours_on_insert;
DROP TRIGGER energy_hours_on_update;
