-- Invitations: a tenant's offer of a role to an e-mail address, waiting until the person behind
-- that address accepts it. Nothing attaches an account to a tenant at invitation time: the
-- invitee opens the link from the e-mail while signed in to a verified account with the invited
-- address (docs/security.md, "Invitations"). A platform admin's new tenant gets its first owner
-- the same way.
--
-- Only the SHA-256 of the link's token is stored; the token carries the tenant's id in clear
-- (the accept call opens that tenant's context, and row-level security does the rest).
-- Accepting or revoking deletes the row; the audit log keeps the history.

CREATE TABLE invitations (
    id          uuid NOT NULL PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- As the inviter typed it; compared without regard to case.
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The tenant admin or platform admin who invited; kept NULL once their account is gone.
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- One pending invitation per address and tenant (inviting again replaces its link); the index
-- leads with tenant_id, as row-level security wants.
CREATE UNIQUE INDEX invitations_tenant_email_key ON invitations (tenant_id, lower(email));

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid));

-- The api invites, lists, revokes and accepts, always inside the tenant's context.
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO switchboard_app;
