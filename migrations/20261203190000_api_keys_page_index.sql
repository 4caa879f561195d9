-- The API keys page reads a tenant's keys newest first, a page at a time, with the key's id
-- (UUIDv7, so in creation order) as the cursor: `WHERE tenant_id = … AND id < cursor ORDER BY
-- id DESC LIMIT n`. Without this index Postgres fetched all of the tenant's keys through
-- (tenant_id, name) and sorted them: 195 ms for the first page of a tenant with 100,000 keys
-- (of 1,000,000), against 0.14 ms with it (a backward index scan that stops after n rows).
CREATE INDEX api_keys_tenant_id_id_idx ON api_keys (tenant_id, id);
