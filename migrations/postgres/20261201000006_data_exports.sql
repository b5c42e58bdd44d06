-- Data exports (modules/accounts, docs/accounts.md): one per user at a time, built in the
-- background by any instance, the archive's bytes kept here so that every instance on the
-- database serves it, deleted when it expires. Instants are Unix seconds.
CREATE TABLE data_exports (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'in_progress', 'successful', 'errored')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Until when the instance building it holds it; past that, another may take it over.
    claimed_until BIGINT,
    file_name TEXT UNIQUE,
    file_size BIGINT,
    archive BYTEA
);
CREATE INDEX data_exports_pending ON data_exports (created_at) WHERE status IN ('queued', 'in_progress');
CREATE INDEX data_exports_expiry ON data_exports (expires_at);
