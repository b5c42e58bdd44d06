-- Accounts, sessions, instance secrets and settings.
-- Booleans are INTEGER here (sqlx's Any driver cannot read SQLite BOOLEAN); instants are Unix seconds.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    bio TEXT,
    location TEXT,
    birth_date TEXT,
    timezone TEXT NOT NULL DEFAULT 'Europe/Paris',
    weekm INTEGER NOT NULL DEFAULT 0,
    language TEXT,
    imperial_units INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username_unique ON users (lower(username));
CREATE UNIQUE INDEX users_email_unique ON users (email_key);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE instance_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE instance_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    registration_switch INTEGER NOT NULL,
    max_users BIGINT NOT NULL,
    max_single_file_size BIGINT NOT NULL,
    max_zip_file_size BIGINT NOT NULL,
    gpx_limit_import BIGINT NOT NULL
);
