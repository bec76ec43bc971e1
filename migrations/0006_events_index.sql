-- One index on events instead of two (docs/schema.md "Events"): every event commit wrote a leaf
-- page of each index, at a random place per socket. The unique (cid, boot, seq) index, now over
-- every row (gateway events have NULL boot and seq, which never conflict), de-duplicates socket
-- records and also serves the per-socket queries; events_cid_ts goes.

DROP INDEX events_cid_ts;
DROP INDEX events_record;
CREATE UNIQUE INDEX events_record ON events (cid, boot, seq);
