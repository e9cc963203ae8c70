-- Record shares (DESIGN §9, issue 26); the table is in sql/catalog.sql.
--
-- A share or unshare invalidates what backends hold of the shares (their memo of shared keys
-- and the plans built on it), not the model: the same statement trigger as the compiled
-- tables, whose relcache invalidation names crm.shares (src/session/cache.rs tells them apart).
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.shares
    FOR EACH STATEMENT EXECUTE FUNCTION crm.catalog_changed();
ALTER TABLE crm.shares ENABLE ALWAYS TRIGGER catalog_changed;
CREATE TRIGGER catalog_changed_applied AFTER INSERT OR UPDATE OR DELETE ON crm.shares
    FOR EACH ROW EXECUTE FUNCTION crm.catalog_changed();
ALTER TABLE crm.shares ENABLE REPLICA TRIGGER catalog_changed_applied;

-- Which record ids are shared with whom is not everyone's to read (the other catalog tables
-- are): a client sees a share it made, one that reaches it, and one of a record whose owner's
-- records it may read; administrators see all. The table's owner (the catalog role, which
-- enforcement reads it as) is not under the policy.
ALTER TABLE crm.shares ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible ON crm.shares FOR SELECT USING (crm.share_visible(tbl, owner_id, kind, target_id, shared_by));

-- The shares by name (DESIGN §9), as the reader may see them.
CREATE VIEW crm.record_shares WITH (security_invoker = true) AS
SELECT s.id AS share_id, s.tbl, s.record_id, s.kind, coalesce(r.name, o.name) AS receiver, s.access, s.until,
       b.name AS shared_by, s.shared_at
FROM crm.shares s
LEFT JOIN crm.roles r ON s.kind IN ('role', 'role_and_subordinates') AND r.id = s.target_id
LEFT JOIN crm.owners o ON s.kind IN ('user', 'group') AND o.id = s.target_id
LEFT JOIN crm.owners b ON b.id = s.shared_by;
GRANT SELECT ON crm.record_shares TO PUBLIC;
