-- Writes through a secure view (see src/policy/fields.rs): the INSTEAD OF trigger passes on
-- to the table only what the writer changed, as the writer, so the table's row policies and
-- its field check (crm.check_field_writes) judge the write. A hidden field reads NULL in the
-- view: leaving it alone leaves it unchanged; setting it is a change, and is refused.
-- TG_ARGV: the protected table and its single-column primary key.
CREATE FUNCTION crm.secure_view_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tbl regclass := TG_ARGV[0]::regclass;
    key name := TG_ARGV[1];
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    columns text;
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT string_agg(quote_ident(k), ', ') INTO columns
        FROM jsonb_each(new_row) AS e(k, v) WHERE v <> 'null'::jsonb;
        IF columns IS NULL THEN
            EXECUTE format('INSERT INTO %s DEFAULT VALUES', tbl);
        ELSE
            EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1)', tbl, columns, columns, tbl)
                USING new_row;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT string_agg(format('%I = r.%I', k, k), ', ') INTO columns
        FROM jsonb_each(new_row) AS e(k, v) WHERE v IS DISTINCT FROM old_row -> k;
        IF columns IS NULL THEN
            RETURN NEW;
        END IF;
        EXECUTE format('UPDATE %s t SET %s FROM jsonb_populate_record(NULL::%s, $1) r
                        WHERE t.%I = (jsonb_populate_record(NULL::%s, $2)).%I', tbl, columns, tbl, key, tbl, key)
            USING new_row, old_row;
    ELSE
        EXECUTE format('DELETE FROM %s t WHERE t.%I = (jsonb_populate_record(NULL::%s, $1)).%I', tbl, key, tbl, key)
            USING old_row;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN CASE WHEN n = 0 THEN NULL WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
