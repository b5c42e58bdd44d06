-- The account lifecycle (modules/accounts, docs/accounts.md).
-- A user's state: pending (registered while email confirmation was on, not confirmed yet),
-- active, or deactivated (by an admin). Accounts that exist already are active. And the
-- address of a pending email change, shown in the profile until the change's link expires.
ALTER TABLE users ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
    CHECK (state IN ('pending', 'active', 'deactivated'));
ALTER TABLE users ADD COLUMN email_to_confirm TEXT;
ALTER TABLE users ADD COLUMN email_to_confirm_until BIGINT;
CREATE INDEX users_pending ON users (created_at) WHERE state = 'pending';

-- The accounts module's links (confirmation, email change, revert): only the SHA-256 of a
-- token is kept, with its purpose, the password version and the address it was issued under
-- (it dies when either changes, revert links excepted), and what the link changes.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('confirm', 'email_change', 'revert')),
    password_version BIGINT NOT NULL,
    email_key TEXT NOT NULL,
    new_email TEXT,
    old_email TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
