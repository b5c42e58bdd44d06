-- The users list at any size (docs/users-api.md §3): the number of users kept on a row of its
-- own by triggers, so a page's `total` does not count every row; and a trigram index of the
-- usernames (FTS5's trigram tokenizer, case-insensitive), so a search of three characters or
-- more does not read every row either. Both are maintained by the database itself, whoever
-- writes the users table.
CREATE TABLE user_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO user_count (id, n) SELECT 1, COUNT(*) FROM users;
CREATE TRIGGER user_count_insert AFTER INSERT ON users
BEGIN
    UPDATE user_count SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER user_count_delete AFTER DELETE ON users
BEGIN
    UPDATE user_count SET n = n - 1 WHERE id = 1;
END;

CREATE VIRTUAL TABLE users_search USING fts5(username, content = 'users', content_rowid = 'id', tokenize = 'trigram');
INSERT INTO users_search (users_search) VALUES ('rebuild');
CREATE TRIGGER users_search_insert AFTER INSERT ON users
BEGIN
    INSERT INTO users_search (rowid, username) VALUES (new.id, new.username);
END;
CREATE TRIGGER users_search_delete AFTER DELETE ON users
BEGIN
    INSERT INTO users_search (users_search, rowid, username) VALUES ('delete', old.id, old.username);
END;
CREATE TRIGGER users_search_update AFTER UPDATE OF username ON users
BEGIN
    INSERT INTO users_search (users_search, rowid, username) VALUES ('delete', old.id, old.username);
    INSERT INTO users_search (rowid, username) VALUES (new.id, new.username);
END;
