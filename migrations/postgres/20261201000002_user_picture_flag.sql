-- Whether a user has a picture, on the user's row: the user object (every module reads it) no
-- longer looks into the pictures module's table. Kept by that module through the kernel's
-- users store, in the transaction that adds or removes the picture.
ALTER TABLE users ADD COLUMN picture BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET picture = TRUE WHERE id IN (SELECT user_id FROM pictures);
