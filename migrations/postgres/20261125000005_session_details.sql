-- What a user sees of their sessions: when each was last used, and from which client.
ALTER TABLE sessions ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
UPDATE sessions SET last_used_at = created_at;
