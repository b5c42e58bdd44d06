-- FitTrackee 1.x's instance texts, which its admin form edits: the about page, the admin's
-- contact address, and a privacy policy of the instance's own with the instant it changed.
ALTER TABLE instance_settings ADD COLUMN about TEXT;
ALTER TABLE instance_settings ADD COLUMN admin_contact TEXT;
ALTER TABLE instance_settings ADD COLUMN privacy_policy TEXT;
ALTER TABLE instance_settings ADD COLUMN privacy_policy_date BIGINT;
