-- An address an account moved away from, kept for it while the change can be reverted
-- (docs/accounts.md, "Reverting a change"): registering with it, or moving another account to
-- it, finds it taken until `until`. Part of the users store (kernel), which every check of a
-- taken address reads; the accounts module makes and ends reservations through it.
CREATE TABLE email_reservations (
    email_key TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until BIGINT NOT NULL
);
CREATE INDEX email_reservations_user ON email_reservations (user_id);
