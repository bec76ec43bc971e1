-- Initial schema. Record identity from the socket is (cid, boot, seq): boot increments at every
-- socket boot and seq restarts at 1, shared by readings and events of that boot.

CREATE TABLE readings (
  cid             TEXT    NOT NULL,
  boot            INTEGER NOT NULL,
  seq             INTEGER NOT NULL,
  ts_ms           INTEGER NOT NULL,  -- unix time, ms
  flags           INTEGER NOT NULL,
  voltage_mv      INTEGER NOT NULL,
  current_ua      INTEGER NOT NULL,
  power_mw        INTEGER NOT NULL,
  apparent_mva    INTEGER NOT NULL,
  power_factor_e4 INTEGER NOT NULL,  -- PF x 10000
  energy_mwh      INTEGER NOT NULL,
  energy_epoch    INTEGER NOT NULL,  -- bumps at every counter wrap or factory reset
  PRIMARY KEY (cid, boot, seq)
) WITHOUT ROWID;

CREATE INDEX readings_cid_ts ON readings (cid, ts_ms);

CREATE TABLE events (
  id     INTEGER PRIMARY KEY,
  cid    TEXT    NOT NULL,
  ts_ms  INTEGER NOT NULL,
  kind   TEXT    NOT NULL,            -- relay, over_current, command, ...
  boot   INTEGER,                     -- boot/seq: set for socket records, NULL for gateway events
  seq    INTEGER,
  value  INTEGER NOT NULL DEFAULT 0,
  detail TEXT    NOT NULL DEFAULT '',
  CHECK ((boot IS NULL) = (seq IS NULL))
);

CREATE UNIQUE INDEX events_record ON events (cid, boot, seq) WHERE seq IS NOT NULL;
CREATE INDEX events_cid_ts ON events (cid, ts_ms);
