-- Single sign-on (modules/sso, docs/sso.md): logins begun at an OpenID provider (the state's
-- SHA-256, that of the browser's flow cookie, the nonce and the PKCE verifier, until the
-- callback), one-time codes exchanged for a
-- session (their SHA-256), provider accounts linked to accounts, and the SSO-only switch.

CREATE TABLE sso_flows (
    state_hash TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sso_codes (
    code_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sso_identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX sso_identities_user ON sso_identities (user_id);

CREATE TABLE sso_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    only_sso INTEGER NOT NULL
);
