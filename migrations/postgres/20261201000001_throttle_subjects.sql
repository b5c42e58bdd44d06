-- Login counters name their account (a digest, `subject`), so that a completed password reset
-- forgets every failed login of the account from every client.
ALTER TABLE throttle ADD COLUMN subject TEXT;
CREATE INDEX throttle_subject ON throttle (subject);

-- Clients an account knows (they signed in to it, registered it or completed a reset): the
-- account-wide bound on failed logins does not apply to them. `key` is the SHA-256 of the
-- account and the client address, never either in clear.
CREATE TABLE known_clients (
    key TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX known_clients_seen ON known_clients (seen_at);
