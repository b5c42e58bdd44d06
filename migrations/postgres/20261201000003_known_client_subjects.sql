-- Known clients name their account (a digest, `subject`, as login counters do), so that a
-- deleted account's known clients go with it and a new account at the address starts clean.
ALTER TABLE known_clients ADD COLUMN subject TEXT;
CREATE INDEX known_clients_subject ON known_clients (subject);
