-- A change sent as one statement (`db::writes`) that must stand whole or not at all calls this
-- when its first write changed no row: the error aborts the statement, so nothing of it stays,
-- and no transaction (with its round trips) is needed to undo it. The constraint name tells the
-- server this refusal from a real check violation.
CREATE FUNCTION refuse_change() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the change''s first write changed no row'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'change_refused';
END
$$;
