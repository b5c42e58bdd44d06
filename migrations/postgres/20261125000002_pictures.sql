-- Users' pictures: one row per user, the re-encoded bytes themselves, so every instance on the
-- database serves every picture and a database backup holds them all. Instants are Unix seconds.

CREATE TABLE pictures (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    etag TEXT NOT NULL,
    data BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
