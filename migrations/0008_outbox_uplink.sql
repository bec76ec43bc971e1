-- The outbox serves every uplink that keeps reports while its broker is away: the Tuya edge (uplink
-- '') and each device-direct platform uplink (Aliyun IoT, Tencent IoT Explorer; its configured
-- name). `ord` stays the row's identity, allocated gateway-wide across all uplinks.

ALTER TABLE outbox ADD COLUMN uplink TEXT NOT NULL DEFAULT '';

CREATE INDEX outbox_uplink ON outbox (uplink, ord);
