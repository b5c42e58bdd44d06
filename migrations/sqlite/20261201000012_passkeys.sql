-- Passkeys (WebAuthn), a second factor beside TOTP (docs/two-factor.md, "Passkeys"). A passkey
-- row holds the credential as webauthn-rs serialises it (credential id, public key, signature
-- counter, backup flags): public material, no secret. user_handle: the random WebAuthn user id
-- of the account, the same for each of its passkeys (never its database id).
CREATE TABLE two_factor_passkeys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    user_handle TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX two_factor_passkeys_user ON two_factor_passkeys (user_id);

-- A ceremony's state between its two requests (the challenge and what the authenticator
-- answered to it), whichever instance answers them: the SHA-256 of the ceremony id handed to
-- the client, single use (deleted when answered), short-lived, one live ceremony per user and
-- kind ('register', 'login').
CREATE TABLE two_factor_ceremonies (
    digest TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (user_id, kind)
);
