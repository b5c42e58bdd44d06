-- Whether a user has a picture, on the user's row: the user object (every module reads it) no
-- longer looks into the pictures module's table. Kept by that module through the kernel's
-- users store, in the transaction that adds or removes the picture.
ALTER TABLE users ADD COLUMN picture INTEGER NOT NULL DEFAULT 0;
UPDATE users SET picture = 1 WHERE id IN (SELECT user_id FROM pictures);
