-- Second factors (docs/two-factor.md). A TOTP secret is kept sealed (AES-256-GCM under a key
-- derived from the root key, the user's id as associated data): nonce || ciphertext || tag.
-- confirmed_at NULL: an enrolment not yet proved by a first code. last_step: the last RFC 6238
-- time step accepted, so that no code is accepted twice.
CREATE TABLE two_factor_totp (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT
);

-- Recovery codes: only the SHA-256 of each (80 random bits), deleted when used.
CREATE TABLE two_factor_recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY (user_id, digest)
);

-- Step tokens of a login waiting for its second factor: the SHA-256 of each, its purpose,
-- single use, short-lived.
CREATE TABLE two_factor_steps (
    digest TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX two_factor_steps_user ON two_factor_steps (user_id);

-- When the policy's grace period began for an account required to enrol.
CREATE TABLE two_factor_grace (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL
);
