-- The user count (migration 20261201000004) moves once per statement, not once per row. Row by
-- row, one statement inserting n users updated the one counter row n times in one transaction,
-- and each update of a row already updated by the transaction costs more than the last: 20,000
-- users took 3 s, 40,000 more 11 s, and 1,000,000 did not finish in 15 minutes
-- (BENCHMARKS.md, "What the run says"). Statement triggers read the rows a statement changed from its
-- transition table: one update, whatever the number of rows, and none when a statement changed
-- no row (the counter's lock is not taken for nothing). SQLite updates its counter row in place
-- and keeps its row triggers.
DROP TRIGGER user_count_change ON users;
DROP FUNCTION user_count_change();

-- One function for both triggers: each names the rows its statement changed `changed_users`.
CREATE FUNCTION user_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed BIGINT;
BEGIN
    SELECT COUNT(*) INTO changed FROM changed_users;
    IF changed > 0 THEN
        UPDATE user_count
        SET n = n + CASE WHEN TG_OP = 'INSERT' THEN changed ELSE -changed END
        WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER user_count_added AFTER INSERT ON users
    REFERENCING NEW TABLE AS changed_users
    FOR EACH STATEMENT EXECUTE FUNCTION user_count_change();
CREATE TRIGGER user_count_removed AFTER DELETE ON users
    REFERENCING OLD TABLE AS changed_users
    FOR EACH STATEMENT EXECUTE FUNCTION user_count_change();
