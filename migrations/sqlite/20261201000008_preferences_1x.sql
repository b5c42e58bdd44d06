-- The two preferences of FitTrackee 1.x's web client that Stride keeps (docs/users-api.md,
-- "FitTrackee 1.x's keys"): how dates are written, and the dark mode (NULL: the browser's
-- choice). The user object carries them while `cookies.enabled` is on.
ALTER TABLE users ADD COLUMN date_format TEXT NOT NULL DEFAULT 'MM/dd/yyyy';
ALTER TABLE users ADD COLUMN use_dark_mode INTEGER;
