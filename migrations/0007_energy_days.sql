-- Local days (docs/schema.md "Days"): the buckets of each socket summed over whole days of the
-- gateway's time zone, so that history by day, week or month and the energy totals read a row a day
-- instead of 24 hourly rows. A day is local, so its bounds are stored: history_days lists the days
-- rolled up, for every socket at once, as [start_ms, end_ms) (23 or 25 hours around a DST change).
-- Days never overlap and are listed only once every sample in them is rolled up into the buckets;
-- a socket without a row for a listed day had nothing stored that day. Readers take a listed day
-- from energy_days when it lies inside what they ask for, and the hours and quarter-hours around it
-- as before; a reader in another zone uses none of them. The daemon fills both tables, a day at a
-- time, and adds a late sample to its day's row as it does to its bucket and hour.

CREATE TABLE history_days (
  start_ms INTEGER NOT NULL PRIMARY KEY,  -- local midnight, unix ms (a multiple of 900000)
  end_ms   INTEGER NOT NULL               -- the next local midnight
) WITHOUT ROWID;

CREATE TABLE energy_days (
  cid            TEXT    NOT NULL,
  start_ms       INTEGER NOT NULL,            -- history_days.start_ms
  energy_mwh     INTEGER NOT NULL DEFAULT 0,  -- sums over the day's buckets
  samples        INTEGER NOT NULL DEFAULT 0,
  power_sum_mw   INTEGER NOT NULL DEFAULT 0,
  power_min_mw   INTEGER,                     -- min/max over the buckets; NULL while samples = 0
  power_max_mw   INTEGER,
  voltage_min_mv INTEGER,
  voltage_max_mv INTEGER,
  current_max_ua INTEGER,
  PRIMARY KEY (cid, start_ms)
) WITHOUT ROWID;
