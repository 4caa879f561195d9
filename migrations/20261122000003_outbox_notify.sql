-- Wakes the outbox relay as soon as a transaction that wrote outbox rows commits (NOTIFY is
-- delivered at commit, never for a rolled-back transaction), so events reach the bus without
-- the relay polling. The relay still sweeps now and then, in case a notification was missed
-- while it was reconnecting.
CREATE FUNCTION outbox_notify() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('outbox_inserted', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_inserted
    AFTER INSERT ON outbox
    FOR EACH STATEMENT
    EXECUTE FUNCTION outbox_notify();
