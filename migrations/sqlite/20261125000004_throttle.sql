-- Throttling counters (fixed windows), shared by every instance on the database. `key` is the
-- SHA-256 of what is counted, never an address in clear.
CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL
);
CREATE INDEX throttle_window ON throttle (window_start);
