-- Each API instance keeps an event's sale rules (hold length, seats per order, sale window,
-- cancellation, demand mode, class prices) in memory and forgets them when they change. The
-- database itself says when: a change to `events` or `ticket_classes` notifies the channel
-- `sale_rules` with the event's id, whoever made it (the API, an admin's psql, a script), so no
-- writer can forget to. `pg_notify` is delivered at commit, together with the change, and
-- never for a rollback; one transaction's repeats of the same id are folded into one.
-- The channel name is `ticketing_api::holds::cache::CHANNEL`.

-- The event's id is the column named by the trigger's argument, on the old row and the new
-- (a class moved to another event would change both). TRUNCATE names no row: '*', every event.
CREATE FUNCTION notify_sale_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('sale_rules', '*');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('sale_rules', to_jsonb(OLD) ->> TG_ARGV[0]);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('sale_rules', to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

-- An update that changes nothing (every column equal) says nothing. A new event needs no
-- notification: nobody can have cached rules of an event that did not exist.
CREATE TRIGGER events_sale_rules_changed
    AFTER UPDATE ON events
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION notify_sale_rules('id');
CREATE TRIGGER events_sale_rules_deleted
    AFTER DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION notify_sale_rules('id');
CREATE TRIGGER events_sale_rules_truncated
    AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sale_rules();

CREATE TRIGGER ticket_classes_sale_rules_changed
    AFTER INSERT OR UPDATE OR DELETE ON ticket_classes
    FOR EACH ROW EXECUTE FUNCTION notify_sale_rules('event_id');
CREATE TRIGGER ticket_classes_sale_rules_truncated
    AFTER TRUNCATE ON ticket_classes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sale_rules();
