-- Issue 10.1, PostgreSQL: check "entries only at the tree size" once per INSERT statement instead of
-- once per row (the writer inserts a batch in one multi-row statement): the rows a statement adds must
-- be exactly size..size+n-1, and the tree size then grows once. Per row, the head row's update cost a
-- third of the append throughput.
DROP TRIGGER audit_entries_in_tree ON audit_entries;
CREATE FUNCTION audit_entries_in_tree_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    expected BIGINT;
    lo BIGINT;
    hi BIGINT;
    n BIGINT;
BEGIN
    SELECT MIN(idx), MAX(idx), COUNT(*) INTO lo, hi, n FROM new_rows;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT size INTO expected FROM audit_head WHERE id = 1 FOR UPDATE;
    IF expected IS NULL OR lo <> expected OR hi <> expected + n - 1 THEN
        RAISE EXCEPTION 'audit entry index % outside the tree of % entries: entries are appended at the tree size only',
            CASE WHEN lo <> expected THEN lo ELSE hi END, expected;
    END IF;
    UPDATE audit_head SET size = hi + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER audit_entries_in_tree AFTER INSERT ON audit_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_in_tree_batch();
